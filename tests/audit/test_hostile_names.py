"""`pox reproduce` and `pox export` write, and `pox diff` reads, only inside their directories,
whatever the bundle says.

They work on runs they have not verified (a published crate, a bundle a colleague sent), so every
name they place or read files by comes from an untrusted log: a workflow source, input or output
named `../x` or `/etc/x` is refused, naming it, before anything is written, and never read.
Runs are recorded in-process (tests/recorded.py); an entry is rewritten to name such a file, with
the bytes of a file the attacker placed next to the working directory, and re-signed with the
session key (an insider; without the key it is the same, since these commands do not verify).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from recorded import RecordedRun, record_run, resign, statement_of

from pox_executor.audit.reproduce import plan, prepare
from pox_executor.cli import main
from pox_executor.errors import UsageError
from pox_executor.primitives import sha256_bytes
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.log import ATTESTATIONS_FILE

PAYLOAD = b"echo owned >> ~/.bashrc\n"


def _opening_with_source(statement: dict[str, Any], name: str) -> None:
    sources = statement["predicate"]["workflow_sources"]
    sources.append({**sources[0], "name": name, "digest": {"sha256": sha256_bytes(PAYLOAD)}})


@pytest.mark.parametrize("name", ["../planted.sh", "sub/../../planted.sh", "/tmp/planted.sh"])
def test_a_source_named_outside_the_working_directory_is_refused(tmp_path: Path, name: str) -> None:
    run = record_run(tmp_path / "origin" / "work")
    (tmp_path / "origin" / "planted.sh").write_bytes(PAYLOAD)  # what `../planted.sh` reads
    log = run.bundle.path / ATTESTATIONS_FILE
    lines = log.read_bytes().splitlines()
    opening = statement_of(lines[0])
    assert opening["predicate"]["workflow_sources"], json.dumps(opening)[:500]
    _opening_with_source(opening, name)
    lines[0] = resign(opening, run.key)
    log.write_bytes(b"".join(line + b"\n" for line in lines))

    into = tmp_path / "again" / "inner"
    with pytest.raises(UsageError, match="copied outside the reproduction directory"):
        prepare(plan(RunBundle.load(run.bundle.path)), into)
    assert not (tmp_path / "again" / "planted.sh").exists()
    assert not list(tmp_path.glob("again/**/planted.sh"))
    assert not into.exists() or not any(into.iterdir()), "nothing is copied when one name is bad"


def test_export_refuses_an_output_named_outside_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = record_run(tmp_path / "origin" / "work")
    (tmp_path / "origin" / "planted.sh").write_bytes(PAYLOAD)
    log = run.bundle.path / ATTESTATIONS_FILE
    lines = log.read_bytes().splitlines()
    record = statement_of(lines[1])
    record["subject"][0]["name"] = "../planted.sh"
    record["subject"][0]["digest"]["sha256"] = sha256_bytes(PAYLOAD)
    lines[1] = resign(record, run.key)
    log.write_bytes(b"".join(line + b"\n" for line in lines))

    (tmp_path / "exported").mkdir()
    crate = tmp_path / "exported" / "crate"
    argv = ["export", str(run.bundle.path), "-o", str(crate), "--allow-simulated"]
    assert main(argv) == 2
    assert "'../planted.sh'" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == []


def _rename_first_output(run: RecordedRun, name: str, content: bytes) -> None:
    log = run.bundle.path / ATTESTATIONS_FILE
    lines = log.read_bytes().splitlines()
    record = statement_of(lines[1])
    record["subject"][0]["name"] = name
    record["subject"][0]["digest"]["sha256"] = sha256_bytes(content)
    lines[1] = resign(record, run.key)
    log.write_bytes(b"".join(line + b"\n" for line in lines))


def test_diff_never_reads_a_file_named_outside_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = {"a": b"alpha private line\n", "b": b"beta private line\n"}
    runs = {}
    for side, content in secrets.items():
        runs[side] = record_run(tmp_path / side / "work")
        (tmp_path / side / "secret.txt").write_bytes(content)  # what `../secret.txt` names
        _rename_first_output(runs[side], "../secret.txt", content)
    code = main(["diff", str(runs["a"].bundle.path), str(runs["b"].bundle.path), "--json"])
    shown = capsys.readouterr().out
    assert code == 1, shown
    assert "private line" not in shown
    (entry,) = [f for j in json.loads(shown)["jobs"] for f in j["outputs"] if "secret" in f["name"]]
    assert entry["tier"] == "unavailable", entry


def test_verify_proof_names_a_fifo_given_as_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = record_run(tmp_path / "work")
    output = next(p for p in (tmp_path / "work").iterdir() if p.name == "a.txt")
    proof = tmp_path / "a.proof"
    assert main(["prove", str(output), "--run", str(run.bundle.path), "-o", str(proof)]) == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["verify-proof", str(proof), str(fifo), "--allow-simulated"]) == 2
    assert f"{fifo}: not a regular file" in capsys.readouterr().err
