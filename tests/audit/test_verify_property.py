"""Property: whatever is done to a valid bundle, `pox verify` answers 0 or 1 without a traceback,
and never OK when a signed byte (the log or the checkpoint) was changed.

One run is recorded in-process; each example restores a scratch copy, applies one random
mutation (bytes flipped, inserted or cut; lines dropped, duplicated or swapped; a JSON field of a
statement replaced, the envelope re-encoded; run.json fields replaced; an output changed) and
runs what `pox verify` runs, in-process (the CLI's own handling is tested in test_verify.py).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recorded import RecordedRun, record_run

from pox_executor.audit.verify import verify_run
from pox_executor.cli.runs import print_report
from pox_executor.errors import PoxError, UsageError
from pox_executor.provenance.bundle import resolve_run

EXAMPLES = 1000

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


class Scratch:
    """A copy of the recorded run that each example restores before mutating it."""

    def __init__(self, run: RecordedRun, root: Path) -> None:
        self.source = run.bundle.workdir
        self.workdir = root / "scratch"
        self.bundle_name = run.bundle.path.name
        self.original = {
            path.relative_to(self.source): path.read_bytes()
            for path in self.source.rglob("*")
            if path.is_file() and ".pox/cache" not in path.as_posix()
        }
        shutil.copytree(self.source, self.workdir)

    @property
    def bundle(self) -> Path:
        return self.workdir / ".pox" / "runs" / self.bundle_name

    def restore(self) -> None:
        """Rewrite only what a mutation changed (cheaper than a fresh copy per example)."""
        for relative, data in self.original.items():
            path = self.workdir / relative
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)

    def verify(self) -> tuple[int, str]:
        """What `pox verify --allow-simulated --offline` does, minus argparse: the exit code
        (0 ok, 1 a check failed or the bundle is malformed, 2 unusable input) and the text."""
        try:
            bundle = resolve_run(None, self.workdir)
            report = verify_run(bundle, allow_simulated=True)
        except UsageError as exc:
            return 2, exc.diagnostics()
        except PoxError as exc:
            return 1, exc.diagnostics()
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = print_report(report, as_json=False, allow_simulated=True)
        return code, out.getvalue()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Scratch:
    root = tmp_path_factory.mktemp("property")
    return Scratch(record_run(root / "run"), root)


def set_at(document: Any, path: list[int], value: Any) -> bool:
    """Replace the value reached by following `path` (indices into keys/items); False if the
    path ends at the root."""
    node = document
    for step_index, step in enumerate(path):
        if isinstance(node, dict) and node:
            key = sorted(node)[step % len(node)]
            if step_index == len(path) - 1 or not isinstance(node[key], dict | list):
                node[key] = value
                return True
            node = node[key]
        elif isinstance(node, list) and node:
            position = step % len(node)
            if step_index == len(path) - 1 or not isinstance(node[position], dict | list):
                node[position] = value
                return True
            node = node[position]
        else:
            return False
    return False


Mutation = Callable[[Scratch], bool]  # returns whether a signed byte changed


def flip_bytes(target: str, position: int, value: int, cut: int) -> Mutation:
    def mutate(s: Scratch) -> bool:
        path = s.bundle / target
        data = bytearray(path.read_bytes())
        if not data:
            return False
        at = position % len(data)
        before = bytes(data)
        if cut:
            del data[at : at + cut]
        else:
            data[at] = value
        path.write_bytes(bytes(data))
        return bytes(data) != before and target != "run.json"

    return mutate


def shuffle_lines(kind: str, first: int, second: int) -> Mutation:
    def mutate(s: Scratch) -> bool:
        path = s.bundle / "attestations.intoto.jsonl"
        lines = path.read_bytes().splitlines()
        i, j = first % len(lines), second % len(lines)
        before = list(lines)
        if kind == "drop":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        return lines != before

    return mutate


def replace_statement_field(line: int, where: list[int], value: Any) -> Mutation:
    def mutate(s: Scratch) -> bool:
        path = s.bundle / "attestations.intoto.jsonl"
        lines = path.read_bytes().splitlines()
        index = line % len(lines)
        envelope = json.loads(lines[index])
        statement = json.loads(base64.b64decode(envelope["payload"]))
        if not set_at(statement, where, value):
            return False
        envelope["payload"] = base64.b64encode(
            json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        ).decode()
        new = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
        changed = new != lines[index]
        lines[index] = new
        path.write_bytes(b"".join(item + b"\n" for item in lines))
        return changed

    return mutate


def replace_run_json_field(where: list[int], value: Any) -> Mutation:
    def mutate(s: Scratch) -> bool:
        path = s.bundle / "run.json"
        meta = json.loads(path.read_text())
        set_at(meta, where, value)
        path.write_text(json.dumps(meta))
        return False  # run.json is not signed: verify may still say OK

    return mutate


def change_output(name: str) -> Mutation:
    def mutate(s: Scratch) -> bool:
        (s.workdir / name).write_text("changed\n")
        return False  # files are checked, but not signed bytes; verify must fail anyway

    return mutate


MUTATIONS = st.one_of(
    st.builds(
        flip_bytes,
        st.sampled_from(["attestations.intoto.jsonl", "checkpoint", "run.json"]),
        st.integers(min_value=0, max_value=1 << 20),
        st.integers(min_value=0, max_value=255),
        st.sampled_from([0, 0, 1, 7]),
    ),
    st.builds(
        shuffle_lines,
        st.sampled_from(["drop", "duplicate", "swap"]),
        st.integers(min_value=0, max_value=100),
        st.integers(min_value=0, max_value=100),
    ),
    st.builds(
        replace_statement_field,
        st.integers(min_value=0, max_value=100),
        st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6),
        JSON_VALUES,
    ),
    st.builds(
        replace_run_json_field,
        st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=3),
        JSON_VALUES,
    ),
    st.builds(change_output, st.sampled_from(["a.txt", "b.txt", "c.txt", "data.txt"])),
)


def test_the_unmutated_scratch_copy_verifies(scratch: Scratch) -> None:
    scratch.restore()
    code, output = scratch.verify()
    assert code == 0, output


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutation=MUTATIONS)
def test_verify_survives_any_mutation_and_never_accepts_a_changed_signed_byte(
    scratch: Scratch, mutation: Mutation
) -> None:
    scratch.restore()
    signed_byte_changed = mutation(scratch)
    code, output = scratch.verify()  # an exception here (a traceback) fails the test
    assert code in (0, 1, 2), output
    assert "Traceback" not in output
    if signed_byte_changed:
        assert code == 1, f"OK after a signed byte changed:\n{output}"
        assert "FAILED" in output
