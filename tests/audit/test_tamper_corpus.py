"""The tamper corpus: each attack on a run bundle, and the check `pox verify` must name.

A run is recorded in-process (tests/recorded.py: the recorder, the sim runtime really running
each command, keys this test holds), copied per case, attacked, then checked with the `pox`
command line called in-process. An attacker without the keys edits bytes; an insider with the
session key (a compromised or buggy writer) re-signs entries and re-signs the checkpoint, so the
signatures and the root hold and only the semantic checks (run id, task id, session, names,
links, measurement) can catch it. `CORPUS` pairs every case with the checks that must fail; the
untouched copy verifies. `--allow-simulated` everywhere: the evidence is simulated, and strict
verification would fail every case (and the control) on that alone.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from recorded import DAG, RecordedRun, crash, record_run, resign, statement_of

from pox_executor.cli import main
from pox_executor.provenance import merkle
from pox_executor.provenance.checkpoint import Checkpoint, sign_checkpoint
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.log import ATTESTATIONS_FILE, MAX_LINE_BYTES
from pox_executor.provenance.records import job_task_id
from pox_executor.provenance.statement import Binding

REQUESTER = "0x" + "11" * 20


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[RecordedRun]]:
    root = tmp_path_factory.mktemp("corpus")
    good = record_run(root / "good", requester=REQUESTER)
    other = record_run(root / "other", requester=REQUESTER)
    first = record_run(root / "resumed", DAG[:1], requester=REQUESTER, finish=False)
    crash(first)
    second = record_run(root / "resumed", DAG[1:], requester=REQUESTER)
    assert second.bundle.path == first.bundle.path, "the interrupted run is resumed"
    return {"good": [good], "other": [other], "resumed": [first, second]}


@dataclass
class Copy:
    """A copy of a recorded run's working directory, and the means to attack it."""

    workdir: Path
    bundle: Path
    sessions: list[RecordedRun]  # one per session, in order: their keys sign
    other: RecordedRun

    @property
    def log(self) -> Path:
        return self.bundle / ATTESTATIONS_FILE

    @property
    def key(self) -> SigningKey:
        return self.sessions[-1].key

    def lines(self) -> list[bytes]:
        return self.log.read_bytes().splitlines()

    def write_lines(self, lines: list[bytes]) -> None:
        self.log.write_bytes(b"".join(line + b"\n" for line in lines))

    def index_of(self, rule: str) -> int:
        for index, line in enumerate(self.lines()):
            predicate = statement_of(line)["predicate"]
            if (
                predicate.get("buildDefinition", {}).get("externalParameters", {}).get("rule")
                == rule
            ):
                return index
        raise AssertionError(f"no record of rule {rule}")

    def index_of_kind(self, kind: str, nth: int = 0) -> int:
        found = [
            i
            for i, line in enumerate(self.lines())
            if statement_of(line)["predicateType"] == f"https://pox.dev/{kind}/v1"
        ]
        return found[nth]

    def recheckpoint(self, key: SigningKey | None = None, key_name: str | None = None) -> None:
        """What an insider holding the session key does after editing the log."""
        lines = self.lines()
        run_id = self.sessions[0].bundle.run_id
        checkpoint = Checkpoint(
            origin=f"pox/run/{run_id}",
            size=len(lines),
            root=merkle.root([merkle.leaf_hash(line) for line in lines]),
        )
        note = sign_checkpoint(checkpoint, key_name or self.sessions[-1].key_name, key or self.key)
        (self.bundle / "checkpoint").write_text(note)

    def forge(
        self,
        index: int,
        edit: Callable[[dict[str, Any]], None],
        *,
        key: SigningKey | None = None,
        rebind: bool = False,
    ) -> None:
        """Edit the statement at `index`, re-sign it (and with `rebind` make fresh evidence for
        its edited binding), and re-sign the checkpoint: everything cryptographic holds."""
        lines = self.lines()
        statement = statement_of(lines[index])
        edit(statement)
        if rebind:
            holder = _evidence_holder(statement)
            binding = Binding.from_json(holder["binding"], where="forged")
            runtime = self.sessions[-1].runtime
            holder["evidence"] = runtime.evidence(binding.report_data()).to_json()
        lines[index] = resign(statement, key or self.key)
        self.write_lines(lines)
        self.recheckpoint()

    def verify(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        code = main(["verify", "--allow-simulated", "--offline", "-C", str(self.workdir), *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err


def _evidence_holder(statement: dict[str, Any]) -> dict[str, Any]:
    predicate = statement["predicate"]
    if "runDetails" not in predicate:
        return dict.__getitem__(statement, "predicate")  # a session opening
    for byproduct in predicate["runDetails"]["byproducts"]:
        if byproduct["name"] == "pox:tee-evidence":
            result: dict[str, Any] = byproduct["annotations"]
            return result
    raise AssertionError("no evidence")


def _copy(runs: list[RecordedRun], other: RecordedRun, tmp_path: Path) -> Copy:
    source = runs[0].bundle.workdir
    workdir = tmp_path / "copy"
    shutil.copytree(source, workdir, symlinks=True)
    bundle = workdir / ".pox" / "runs" / runs[0].bundle.run_id
    return Copy(workdir, bundle, runs, other)


@pytest.fixture
def good(runs: dict[str, list[RecordedRun]], tmp_path: Path) -> Copy:
    return _copy(runs["good"], runs["other"][0], tmp_path)


@pytest.fixture
def resumed(runs: dict[str, list[RecordedRun]], tmp_path: Path) -> Copy:
    return _copy(runs["resumed"], runs["other"][0], tmp_path)


# --- attacks without the keys: bytes, lines, files ---------------------------------------------


def flip_char(text: str, position: int) -> str:
    replacement = "B" if text[position] == "A" else "A"
    return text[:position] + replacement + text[position + 1 :]


def flip_envelope(c: Copy, field: str) -> None:
    lines = c.lines()
    index = c.index_of("b")
    envelope = json.loads(lines[index])
    if field == "payload":
        envelope["payload"] = flip_char(envelope["payload"], len(envelope["payload"]) // 2)
    else:
        envelope["signatures"][0]["sig"] = flip_char(envelope["signatures"][0]["sig"], 10)
    lines[index] = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
    c.write_lines(lines)


def edit_checkpoint(c: Copy, line_no: int, edit: Callable[[str], str]) -> None:
    path = c.bundle / "checkpoint"
    lines = path.read_text().split("\n")
    lines[line_no] = edit(lines[line_no])
    path.write_text("\n".join(lines))


def other_root(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def flip_file_byte(c: Copy, name: str) -> None:
    path = c.workdir / name
    data = bytearray(path.read_bytes())
    data[0] ^= 0x20
    path.write_bytes(bytes(data))


def drop_line(c: Copy) -> None:
    lines = c.lines()
    del lines[c.index_of("b")]
    c.write_lines(lines)


def duplicate_line(c: Copy) -> None:
    lines = c.lines()
    c.write_lines([*lines, lines[c.index_of("a")]])


def move_last_first(c: Copy) -> None:
    lines = c.lines()
    c.write_lines([lines[-1], *lines[:-1]])


def swap_b_and_c(c: Copy) -> None:
    lines = c.lines()
    i, j = c.index_of("b"), c.index_of("c")
    lines[i], lines[j] = lines[j], lines[i]
    c.write_lines(lines)


def resign_with_foreign_key(c: Copy) -> None:
    lines = c.lines()
    index = c.index_of("b")
    lines[index] = resign(statement_of(lines[index]), SigningKey.generate())
    c.write_lines(lines)


def replace_opening_key(c: Copy) -> None:
    """A new key in the session opening, self-signed: its evidence binds the old key."""
    lines = c.lines()
    statement = statement_of(lines[0])
    key = SigningKey.generate()
    statement["predicate"]["public_key"] = key.public_key.hex()
    lines[0] = resign(statement, key)
    c.write_lines(lines)


def empty_bundle(c: Copy) -> None:
    c.log.unlink()
    (c.bundle / "checkpoint").unlink()
    meta = json.loads((c.bundle / "run.json").read_text())
    meta.update(sessions=[], status="running")
    (c.bundle / "run.json").write_text(json.dumps(meta))


def append_other_run(c: Copy) -> None:
    """Another run's entries appended, and its session copied into run.json."""
    c.write_lines([*c.lines(), *c.other.bundle.attestations_path.read_bytes().splitlines()])
    meta = json.loads((c.bundle / "run.json").read_text())
    meta["sessions"] += [s.to_json() for s in c.other.bundle.index.sessions]
    (c.bundle / "run.json").write_text(json.dumps(meta))


def insert_other_run_before_close(c: Copy) -> None:
    """An insider splices another run's opening and records in before the closing."""
    lines = c.lines()
    foreign = c.other.bundle.attestations_path.read_bytes().splitlines()[:-1]
    c.write_lines([*lines[:-1], *foreign, lines[-1]])
    c.recheckpoint()


def truncate_with_older_checkpoint(c: Copy) -> None:
    """The log cut back to an earlier prefix, with the checkpoint saved at that size."""
    size = 3
    c.write_lines(c.lines()[:size])
    (c.bundle / "checkpoint").write_text(c.sessions[-1].checkpoints[size])


def drop_close_and_recheckpoint(c: Copy) -> None:
    c.write_lines(c.lines()[:-1])
    c.recheckpoint()


def rename_run_id(c: Copy) -> None:
    meta = json.loads((c.bundle / "run.json").read_text())
    meta["run_id"] = "20990101T000000Z-abcdef"
    (c.bundle / "run.json").write_text(json.dumps(meta))


def rename_bundle(c: Copy) -> None:
    rename_run_id(c)
    c.bundle.rename(c.bundle.with_name("20990101T000000Z-abcdef"))
    c.bundle = c.bundle.with_name("20990101T000000Z-abcdef")


def other_run_id(statement: dict[str, Any]) -> None:
    statement["predicate"]["buildDefinition"]["internalParameters"]["run_id"] = "other-run"


def other_task_id(statement: dict[str, Any]) -> None:
    _evidence_holder(statement)["binding"]["task_id"] = job_task_id("other-run", 2, 1)


def copy_evidence_from_other_run(c: Copy) -> None:
    theirs = statement_of(c.other.bundle.attestations_path.read_bytes().splitlines()[2])

    def edit(statement: dict[str, Any]) -> None:
        _evidence_holder(statement).update(_evidence_holder(theirs))

    c.forge(c.index_of("b"), edit)


def wrong_session_index(statement: dict[str, Any]) -> None:
    statement["predicate"]["session"] = 1
    statement["predicate"]["binding"]["task_id"] = statement["predicate"]["binding"][
        "task_id"
    ].replace("/session/0", "/session/1")


def close_field(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(statement: dict[str, Any]) -> None:
        statement["predicate"][name] = value

    return edit


def subject_name(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(statement: dict[str, Any]) -> None:
        statement["subject"][0]["name"] = name

    return edit


def input_edit(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def edit(statement: dict[str, Any]) -> None:
        for dep in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
            if dep.get("annotations", {}).get("pox.kind") == "input":
                if "name" in changes:
                    dep["name"] = changes["name"]
                if "sha256" in changes:
                    dep["digest"]["sha256"] = changes["sha256"]
                return
        raise AssertionError("no input")

    return edit


def unknown_parent(statement: dict[str, Any]) -> None:
    for dep in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        if dep.get("annotations", {}).get("pox.kind") == "parent-envelope":
            dep["digest"]["sha256"] = "ab" * 32
            return
    raise AssertionError("no parent")


def other_builder(statement: dict[str, Any]) -> None:
    statement["predicate"]["runDetails"]["builder"]["id"] = (
        "https://pox.dev/backends/sim@sha256:" + "cd" * 32
    )


def other_image(statement: dict[str, Any]) -> None:
    for dep in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        if dep["name"] == "pox:environment/image":
            dep["digest"]["sha256"] = "ef" * 32


def replace_output(c: Copy, how: str) -> None:
    path = c.workdir / "b.txt"
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(how)


def append_line(c: Copy, line: bytes) -> None:
    with open(c.log, "ab") as handle:
        handle.write(line + b"\n")


def replace_line(c: Copy, index: int, line: bytes) -> None:
    lines = c.lines()
    lines[index] = line
    c.write_lines(lines)


# --- resumed runs (two sessions) ---------------------------------------------------------------


def signed_by_earlier_session(c: Copy) -> None:
    c.forge(c.index_of("c"), lambda st: None, key=c.sessions[0].key)


def wrong_continues(statement: dict[str, Any]) -> None:
    statement["predicate"]["continues"]["size"] = 1


def other_requester(statement: dict[str, Any]) -> None:
    statement["predicate"]["requester"] = "0x" + "22" * 20


def drop_second_opening(c: Copy) -> None:
    lines = c.lines()
    del lines[c.index_of_kind("session-open", 1)]
    c.write_lines(lines)
    c.recheckpoint()


Attack = Callable[[Copy], None]
# case -> (fixture, attack, checks that must be among the errors)
CORPUS: dict[str, tuple[str, Attack, tuple[str, ...]]] = {
    "output-file-byte": ("good", lambda c: flip_file_byte(c, "b.txt"), ("files",)),
    "source-file-byte": ("good", lambda c: flip_file_byte(c, "data.txt"), ("files",)),
    "output-file-deleted": ("good", lambda c: (c.workdir / "c.txt").unlink(), ("files",)),
    "envelope-payload-byte": (
        "good",
        lambda c: flip_envelope(c, "payload"),
        ("envelope", "merkle-root"),
    ),
    "envelope-signature-byte": (
        "good",
        lambda c: flip_envelope(c, "sig"),
        ("envelope", "merkle-root"),
    ),
    "checkpoint-root": ("good", lambda c: edit_checkpoint(c, 2, other_root), ("checkpoint",)),
    "checkpoint-size": (
        "good",
        lambda c: edit_checkpoint(c, 1, lambda size: str(int(size) - 1)),
        ("checkpoint",),
    ),
    "checkpoint-signature": (
        "good",
        lambda c: edit_checkpoint(c, 4, lambda line: flip_char(line, len(line) - 8)),
        ("checkpoint",),
    ),
    "checkpoint-deleted": ("good", lambda c: (c.bundle / "checkpoint").unlink(), ("checkpoint",)),
    "log-deleted": ("good", lambda c: c.log.unlink(), ("session-open",)),
    "empty-bundle": ("good", empty_bundle, ("session-open",)),
    "dropped-line": ("good", drop_line, ("log", "close")),
    "duplicated-line": ("good", duplicate_line, ("duplicate", "log")),
    "closing-moved-first": ("good", move_last_first, ("session-open", "checkpoint")),
    "two-records-swapped": ("good", swap_b_and_c, ("merkle-root",)),
    "record-resigned-with-foreign-key": (
        "good",
        resign_with_foreign_key,
        ("signer", "merkle-root"),
    ),
    "session-opening-key-replaced": (
        "good",
        replace_opening_key,
        ("session-evidence", "checkpoint"),
    ),
    "bytes-appended-after-the-run": (
        "good",
        lambda c: c.log.open("ab").write(b'{"payload":"forged"'),
        ("log",),
    ),
    "other-run-appended-and-its-session-in-run-json": ("good", append_other_run, ("log",)),
    "other-run-spliced-in-by-insider": (
        "good",
        insert_other_run_before_close,
        ("run-id",),
    ),
    "truncated-with-older-checkpoint": (
        "good",
        truncate_with_older_checkpoint,
        ("incomplete",),
    ),
    "closing-dropped-by-insider": ("good", drop_close_and_recheckpoint, ("incomplete",)),
    "run-id-renamed-in-run-json": ("good", rename_run_id, ("run-id",)),
    "bundle-directory-renamed": ("good", rename_bundle, ("run-id",)),
    "record-of-another-run-id": (
        "good",
        lambda c: c.forge(c.index_of("b"), other_run_id),
        ("run-id",),
    ),
    "binding-task-id-of-another-run": (
        "good",
        lambda c: c.forge(c.index_of("b"), other_task_id, rebind=True),
        ("task-id",),
    ),
    "evidence-copied-from-another-run": (
        "good",
        copy_evidence_from_other_run,
        ("task-id", "evidence"),
    ),
    "session-opening-wrong-index": (
        "good",
        lambda c: c.forge(0, wrong_session_index, rebind=True),
        ("session-open",),
    ),
    "closing-size-wrong": (
        "good",
        lambda c: c.forge(c.index_of_kind("session-close"), close_field("size", 2)),
        ("close",),
    ),
    "closing-counts-wrong": (
        "good",
        lambda c: c.forge(c.index_of_kind("session-close"), close_field("failed", 1)),
        ("close",),
    ),
    "absolute-subject-name": (
        "good",
        lambda c: c.forge(c.index_of("b"), subject_name("/etc/passwd")),
        ("names",),
    ),
    "dotdot-input-name": (
        "good",
        lambda c: c.forge(c.index_of("c"), input_edit(name="../../etc/shadow")),
        ("names",),
    ),
    "external-subject-not-read": (
        "good",
        lambda c: c.forge(c.index_of("a"), subject_name("external:/dev/zero")),
        ("parent-link",),
    ),
    "output-replaced-by-fifo": ("good", lambda c: replace_output(c, "fifo"), ("files",)),
    "output-symlink-to-etc": ("good", lambda c: replace_output(c, "/etc/hostname"), ("files",)),
    "output-symlink-to-dev-zero": ("good", lambda c: replace_output(c, "/dev/zero"), ("files",)),
    "unknown-parent-envelope": (
        "good",
        lambda c: c.forge(c.index_of("b"), unknown_parent),
        ("parent-link",),
    ),
    "input-digest-differs-from-producer": (
        "good",
        lambda c: c.forge(c.index_of("b"), input_edit(sha256="12" * 32)),
        ("parent-link",),
    ),
    "producer-without-the-output": (
        "good",
        lambda c: c.forge(c.index_of("b"), input_edit(name="a2.txt")),
        ("parent-link",),
    ),
    "builder-id-names-another-measurement": (
        "good",
        lambda c: c.forge(c.index_of("b"), other_builder),
        ("measurement",),
    ),
    "statement-names-another-image": (
        "good",
        lambda c: c.forge(c.index_of("b"), other_image),
        ("measurement",),
    ),
    "oversized-line": (
        "good",
        lambda c: append_line(c, b"x" * (MAX_LINE_BYTES + 10)),
        ("log",),
    ),
    "deeply-nested-line": (
        "good",
        lambda c: replace_line(c, 2, b"[" * 100_000 + b"]" * 100_000),
        ("envelope",),
    ),
    "non-utf8-line": ("good", lambda c: replace_line(c, 2, b"\xff\xfe{\x80}"), ("envelope",)),
    "record-signed-by-earlier-session": ("resumed", signed_by_earlier_session, ("signer",)),
    "resumed-session-continues-wrong-log": (
        "resumed",
        lambda c: c.forge(c.index_of_kind("session-open", 1), wrong_continues),
        ("session-open",),
    ),
    "resumed-session-other-requester": (
        "resumed",
        lambda c: c.forge(c.index_of_kind("session-open", 1), other_requester),
        ("requester",),
    ),
    "resumed-session-opening-dropped": ("resumed", drop_second_opening, ("signer",)),
}


@pytest.mark.parametrize("fixture", ["good", "resumed"])
def test_the_untouched_copy_verifies(
    fixture: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    copy: Copy = request.getfixturevalue(fixture)
    code, output = copy.verify(capsys)
    assert code == 0, output
    assert "status=succeeded" in output
    assert f"requester={REQUESTER}" in output


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_each_attack_fails_verification_naming_the_check(
    case: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture, attack, checks = CORPUS[case]
    copy: Copy = request.getfixturevalue(fixture)
    attack(copy)
    code, output = copy.verify(capsys)
    assert code == 1, output
    assert "FAILED" in output
    assert "OK" not in output.splitlines()[-1]
    for check in checks:
        assert f"ERROR   {check} " in output, f"{case}: check {check!r} not named in:\n{output}"


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


def test_an_incomplete_run_is_never_ok_succeeded(
    good: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    truncate_with_older_checkpoint(good)
    code, output = good.verify(capsys, "--allow-incomplete")
    assert code == 0, output
    assert "INCOMPLETE" in output
    assert "status=incomplete" in output
    assert "status=succeeded" not in output


def test_external_names_are_read_only_when_asked(
    good: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = good.workdir.parent / "outside.txt"
    outside.write_text("outside\n")
    good.forge(good.index_of("c"), subject_name(f"external:{outside}"))
    code, output = good.verify(capsys)
    assert code == 0, output
    assert "1 files outside the working directory were not read" in output
    outside.write_text("changed\n")
    assert good.verify(capsys)[0] == 0
    code, output = good.verify(capsys, "--check-external")
    assert code == 1
    assert f"external:{outside} on disk has sha256" in output
