"""`verify_run`, `pox verify --policy` and `verify-proof` in-process, and bad input at the CLI.

Bad input (a malformed run.json, a directory where a file belongs, non-UTF-8, random bytes or
deep nesting as a policy) must give a one-line error naming the file and field, exit 1 or 2,
never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from recorded import DAG, RecordedRun, Step, record_run

from pox_executor.audit.proof import PROOF_FORMAT, make_proof, verify_file_proof
from pox_executor.audit.verify import verify_run
from pox_executor.cli import main
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.records import JobRecord, read_entries
from pox_executor.provenance.tlog_proof import format_proof


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedRun:
    steps = (*DAG, Step(4, "broken", ("a.txt",), ("half.txt",), "echo h > half.txt; exit 3"))
    return record_run(tmp_path_factory.mktemp("verify") / "w", steps)


@pytest.fixture
def workdir(recorded: RecordedRun, tmp_path: Path) -> Path:
    copy = tmp_path / "w"
    shutil.copytree(recorded.bundle.workdir, copy)
    return copy


def bundle_dir(workdir: Path) -> Path:
    (path,) = (workdir / ".pox" / "runs").iterdir()
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_failed_run_verifies_as_failed(workdir: Path) -> None:
    report = verify_run(RunBundle.load(bundle_dir(workdir)), allow_simulated=True)
    assert report.ok, [f.render() for f in report.errors]
    assert report.facts["status"] == "failed"
    assert report.facts["failed_attempts"] == 1


def test_strict_verification_rejects_simulated_evidence(workdir: Path) -> None:
    report = verify_run(RunBundle.load(bundle_dir(workdir)))
    assert [f.check for f in report.errors] == ["simulated"]


def test_policy_pins_measurements(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "verify", "--allow-simulated", "--offline", "-C", str(workdir))
    assert code == 0
    measurement = out.split("accepted measurements: measurement=")[1].split()[0]
    right = tmp_path / "right.json"
    right.write_text(json.dumps({"measurements": {"sim-report": [{"measurement": measurement}]}}))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"measurements": {"sim-report": [{"measurement": "other"}]}}))
    args = ("verify", "--allow-simulated", "--offline", "-C", str(workdir), "--policy")
    assert run_cli(capsys, *args, str(right))[0] == 0
    code, out, err = run_cli(capsys, *args, str(wrong))
    assert code == 1
    assert "measurement: measurement does not match the reference value" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff random", "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper than"),
        (b'{"allow_debug": "yes"}', "field 'allow_debug': expected true or false"),
        (b'{"measurements": {"sim-report": "x"}}', "field 'measurements.sim-report'"),
    ],
)
def test_a_bad_policy_is_a_usage_error_naming_file_and_field(
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    expected: str,
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_bytes(content)
    code, _, err = run_cli(capsys, "verify", "-C", str(workdir), "--policy", str(policy))
    assert code == 2
    assert str(policy) in err and expected in err
    assert "Traceback" not in err


def test_a_directory_as_policy_is_a_usage_error(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "verify", "-C", str(workdir), "--policy", str(tmp_path))
    assert code == 2
    assert str(tmp_path) in err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda m: m.update(sessions="all of them"), "field 'sessions'"),
        (lambda m: m.update(tree_size="5"), "field 'tree_size': expected an integer or null"),
        (lambda m: m.update(sessions=[{"index": "0"}]), "sessions[0]'.index"),
        (lambda m: m.update(run_id=7), "field 'run_id'"),
        (lambda m: m.update(dag_edges=[1, 2]), "field 'dag_edges'"),
    ],
)
def test_a_malformed_run_json_names_the_field(
    workdir: Path, capsys: pytest.CaptureFixture[str], edit: object, expected: str
) -> None:
    run_file = bundle_dir(workdir) / "run.json"
    meta = json.loads(run_file.read_text())
    edit(meta)  # type: ignore[operator]
    run_file.write_text(json.dumps(meta))
    code, _, err = run_cli(capsys, "verify", str(bundle_dir(workdir)))
    assert code == 1
    assert str(run_file) in err and expected in err


@pytest.mark.parametrize("damage", ["non-utf8", "nested", "directory"])
def test_run_json_that_cannot_be_read_is_an_error(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    run_file = bundle_dir(workdir) / "run.json"
    if damage == "directory":
        run_file.unlink()
        run_file.mkdir()
    else:
        run_file.write_bytes(b"\xff\xfe\x00" if damage == "non-utf8" else b"[" * 100_000)
    code, _, err = run_cli(capsys, "verify", str(bundle_dir(workdir)))
    assert code == 1
    assert "run.json" in err and "Traceback" not in err


def test_a_log_that_is_a_directory_is_reported(workdir: Path) -> None:
    log = bundle_dir(workdir) / "attestations.intoto.jsonl"
    log.unlink()
    log.mkdir()
    report = verify_run(RunBundle.load(bundle_dir(workdir)), allow_simulated=True)
    assert [f.check for f in report.errors] == ["log"]


# --- proofs ------------------------------------------------------------------------------------


def test_a_proof_round_trips_and_refuses_the_wrong_file(workdir: Path) -> None:
    bundle = RunBundle.load(bundle_dir(workdir))
    text = make_proof(bundle, workdir / "b.txt")
    report = verify_file_proof(text, file=workdir / "b.txt", allow_simulated=True)
    assert report.ok, [f.render() for f in report.errors]
    assert report.facts["rule"] == "b"
    wrong = verify_file_proof(text, file=workdir / "c.txt", allow_simulated=True)
    assert [f.check for f in wrong.errors] == ["file"]


def test_prove_refuses_an_output_of_a_failed_attempt(workdir: Path) -> None:
    from pox_executor.errors import UsageError

    with pytest.raises(UsageError, match="only by failed attempts"):
        make_proof(RunBundle.load(bundle_dir(workdir)), workdir / "half.txt")


def test_verify_proof_refuses_a_proof_of_a_failed_job(workdir: Path) -> None:
    """A proof made by hand (not by `pox prove`) for the failed attempt's output."""
    bundle = RunBundle.load(bundle_dir(workdir))
    checkpoint = bundle.checkpoint_path.read_text()
    lines = read_log_lines(bundle.attestations_path).lines
    entries = read_entries(bundle.attestations_path)
    index, job = next(
        (i, e) for i, e in enumerate(entries) if isinstance(e, JobRecord) and not e.succeeded
    )
    extra = {
        "format": PROOF_FORMAT,
        "run_id": bundle.run_id,
        "file": {"path": "half.txt", "sha256": job.subjects[0].sha256},
        "envelope": lines[index].decode(),
        "session_openings": [lines[0].decode()],
    }
    tree = merkle.MerkleTree([merkle.leaf_hash(line) for line in lines])
    text = format_proof(index, tree.inclusion_proof(index), checkpoint, json.dumps(extra).encode())
    report = verify_file_proof(text, allow_simulated=True)
    assert [f.check for f in report.errors] == ["status"]
    assert "FAILED" in report.errors[0].message


def test_a_proof_whose_job_is_signed_by_a_stranger_fails(workdir: Path) -> None:
    from recorded import resign, statement_of

    from pox_executor.provenance.keys import SigningKey

    bundle = RunBundle.load(bundle_dir(workdir))
    text = make_proof(bundle, workdir / "b.txt")
    # the stranger's self-consistent envelope, with its key in its own binding, is not enough
    lines = text.split("\n")
    extra_at = next(i for i, line in enumerate(lines) if line.startswith("extra "))
    import base64

    extra = json.loads(base64.b64decode(lines[extra_at].removeprefix("extra ")))
    forged = resign(statement_of(extra["envelope"].encode()), SigningKey.generate())
    extra["envelope"] = forged.decode()
    lines[extra_at] = "extra " + base64.b64encode(json.dumps(extra).encode()).decode()
    report = verify_file_proof("\n".join(lines), allow_simulated=True)
    assert {"inclusion", "envelope"} <= {f.check for f in report.errors}


def test_verify_never_reads_a_fifo_output(workdir: Path) -> None:
    (workdir / "b.txt").unlink()
    os.mkfifo(workdir / "b.txt")
    report = verify_run(RunBundle.load(bundle_dir(workdir)), allow_simulated=True)
    assert [f.message for f in report.errors] == ["b.txt: not a regular file; it was not read"]
