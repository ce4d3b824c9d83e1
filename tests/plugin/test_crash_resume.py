"""Crash safety: `kill -9` at any moment leaves a bundle that verifies, and the rerun resumes it.

Each scenario starts `snakemake --executor pox` on an eight-job workflow in its own process
group, kills the whole group with SIGKILL at one moment (after the 1st, 3rd or 6th record, or
while a job is running and unrecorded), checks that the interrupted bundle verifies as a valid
prefix, reruns with `--rerun-incomplete`, and checks that the same run was resumed (a second
session), that every record of the prefix is still there byte for byte at the same position, that
no record is duplicated, and that the final bundle verifies. At the end, `RunLog` recovery from
a torn last line, directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from poxrun import (
    ATTESTATIONS,
    Record,
    bundles,
    only_bundle,
    pox,
    read_records,
    require_sandbox_tools,
    run_json,
    run_snakemake,
    snakemake_env,
)

from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.checkpoint import verify_checkpoint
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.log import CHECKPOINT_FILE, RunLog
from pox_executor.provenance.records import SessionOpen, decode_line

SNAKEFILE = """\
STEPS = range(1, 7)

rule all:
    input: "summary.txt"

rule step:
    output: "step/{i}.txt"
    shell: "sleep 0.7; echo {wildcards.i} > {output}"

rule summary:
    input: expand("step/{i}.txt", i=STEPS)
    output: "summary.txt"
    shell: "sleep 2; cat {input} > {output}"
"""
JOBS = 8  # six steps, the summary, the target rule


def complete_lines(bundle: Path) -> list[bytes]:
    data = (bundle / ATTESTATIONS).read_bytes() if (bundle / ATTESTATIONS).exists() else b""
    return data[: data.rfind(b"\n") + 1].splitlines()


def started_jobs(bundle: Path) -> int:
    """Jobs that started: each opens its captured log under logs/ when it starts."""
    logs = bundle / "logs"
    return len(list(logs.iterdir())) if logs.is_dir() else 0


def start_workflow(workdir: Path, cores: int = 2) -> subprocess.Popen[bytes]:
    """`snakemake --executor pox` in `workdir`, in a process group of its own (to kill)."""
    require_sandbox_tools()
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", str(cores)],
        cwd=workdir,
        env=snakemake_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_when(workdir: Path, moment: str) -> None:
    """Run the workflow and SIGKILL its whole process group at `moment`."""
    process = start_workflow(workdir)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the workflow ended before the kill moment"
            found = bundles(workdir) if (workdir / ".pox" / "runs").is_dir() else []
            if found:
                records = len(complete_lines(found[0]))
                if moment.startswith("after-"):
                    if records >= int(moment.removeprefix("after-")):
                        return
                elif records >= 2 and started_jobs(found[0]) > records:
                    return  # a job is running and not recorded yet
            time.sleep(0.005)
        raise AssertionError(f"moment {moment} never came")
    finally:
        with contextlib.suppress(ProcessLookupError):  # let the real assertion surface
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def unlock(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock", "--cores", "1"],
        cwd=workdir,
        env=snakemake_env(workdir),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def session_of(record: Record, meta: dict[str, object]) -> int:
    keyid = record.envelope["signatures"][0]["keyid"]
    sessions = meta["sessions"]
    assert isinstance(sessions, list)
    return next(s["index"] for s in sessions if s["keyid"] == keyid)


def outputs_run_by(snakemake_output: str) -> set[str]:
    """Outputs of the jobs a Snakemake invocation ran, from its job banners."""
    return set(re.findall(r"^\s+output: (.+)$", snakemake_output, flags=re.MULTILINE))


@pytest.mark.integration
@pytest.mark.parametrize("moment", ["after-1", "after-3", "after-6", "while-a-job-runs"])
def test_kill_and_resume(tmp_path: Path, moment: str) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    kill_when(workdir, moment)

    bundle = only_bundle(workdir)
    prefix = complete_lines(bundle)
    assert 1 <= len(prefix) < JOBS
    strict = pox("verify", "--allow-simulated", "--no-files", cwd=workdir)
    assert strict.returncode == 1, "an interrupted run is never OK without --allow-incomplete"
    assert "INCOMPLETE" in strict.stderr or "incomplete" in strict.stderr
    interrupted = pox(
        "verify", "--allow-simulated", "--allow-incomplete", "--no-files", cwd=workdir
    )
    assert interrupted.returncode == 0, interrupted.stdout + interrupted.stderr
    with open(bundle / ATTESTATIONS, "ab") as handle:
        handle.write(b'{"payloadType":"appl')  # as if the kill had torn an append
    torn = pox("verify", "--allow-simulated", "--allow-incomplete", "--no-files", cwd=workdir)
    assert torn.returncode == 0, torn.stdout + torn.stderr
    assert "bytes after the last complete line (a write interrupted by a crash)" in torn.stdout
    assert run_json(bundle)["status"] == "running"

    unlock(workdir)  # the killed Snakemake left its lock behind
    rerun = run_snakemake(workdir, "--rerun-incomplete")

    assert only_bundle(workdir) == bundle, "the interrupted run is resumed, not replaced"
    meta = run_json(bundle)
    assert [s["index"] for s in meta["sessions"]] == [0, 1]
    assert meta["status"] == "succeeded"
    final = complete_lines(bundle)
    assert final[: len(prefix)] == prefix, "every record of the prefix kept, byte for byte"
    assert len(set(final)) == len(final), "no envelope line twice"

    records = read_records(bundle)
    rerun_outputs = outputs_run_by(rerun.stdout + rerun.stderr)
    successes = Counter(r.key for r in records if r.status == "succeeded")
    for record in records:
        if record.status == "succeeded" and successes[record.key] > 1:
            # a second success only where Snakemake itself ran the job again (incomplete output)
            assert successes[record.key] == 2, record.key
            assert set(record.subjects) <= rerun_outputs, record.key
    per_session = Counter((session_of(r, meta), r.key) for r in records if r.status == "succeeded")
    assert max(per_session.values()) == 1, "no job recorded twice by one session"
    assert {r.key for r in records if r.status == "succeeded"} == {
        ("all", ()),
        ("summary", ()),
        *(("step", (("i", str(i)),)) for i in range(1, 7)),
    }

    final_verify = pox("verify", "--allow-simulated", cwd=workdir)
    assert final_verify.returncode == 0, final_verify.stdout + final_verify.stderr
    assert "WARNING log" not in final_verify.stdout


@pytest.mark.integration
def test_a_run_killed_before_its_first_session_verifies_empty_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "echo a > {output}"\n'
    )
    # what a kill right after the bundle was created leaves: run.json, no session, no log
    bundle = RunBundle.create(tmp_path, {"snakefile": str((tmp_path / "Snakefile").resolve())})

    assert pox("verify", "--allow-simulated", cwd=tmp_path).returncode == 1  # nothing is signed
    empty = pox("verify", "--allow-simulated", "--allow-incomplete", cwd=tmp_path)
    assert empty.returncode == 0, empty.stdout + empty.stderr
    assert "interrupted before its first session began" in empty.stdout

    run_snakemake(tmp_path)
    assert only_bundle(tmp_path) == bundle.path
    assert [s["index"] for s in run_json(bundle.path)["sessions"]] == [0]
    assert [r.rule for r in read_records(bundle.path)] == ["a"]
    assert pox("verify", "--allow-simulated", cwd=tmp_path).returncode == 0


@pytest.mark.integration
def test_the_session_opens_while_the_first_job_runs(tmp_path: Path) -> None:
    """The signed opening does not wait for the first job to end (it was appended just before
    the first record, ahead of that job's result), so a run killed during its first job leaves
    a session that verifies as interrupted."""
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "sleep 120; echo a > {output}"\n'
    )
    process = start_workflow(tmp_path, cores=1)
    deadline = time.monotonic() + 100
    lines: list[bytes] = []
    try:
        while time.monotonic() < deadline and not lines:
            assert process.poll() is None, "the workflow ended while its only job sleeps"
            found = bundles(tmp_path) if (tmp_path / ".pox" / "runs").is_dir() else []
            lines = complete_lines(found[0]) if found else []
            time.sleep(0.05)
        assert not (tmp_path / "a.txt").exists(), "the job is still running"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert len(lines) == 1, "the opening is in the log before the first job ends"
    _, entry = decode_line(lines[0], line_no=1)
    assert isinstance(entry, SessionOpen)
    interrupted = pox("verify", "--allow-simulated", "--allow-incomplete", cwd=tmp_path)
    assert interrupted.returncode == 0, interrupted.stdout + interrupted.stderr


# --- RunLog recovery, directly --------------------------------------------------------------


def rfc9162_root(lines: list[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash, written out independently of pox_executor.provenance.merkle."""
    if len(lines) == 1:
        return hashlib.sha256(b"\x00" + lines[0]).digest()
    split = 1 << ((len(lines) - 1).bit_length() - 1)
    left, right = rfc9162_root(lines[:split]), rfc9162_root(lines[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def checkpoint_of(directory: Path, key_name: str, key: SigningKey) -> tuple[int, bytes]:
    text = (directory / CHECKPOINT_FILE).read_text()
    checkpoint = verify_checkpoint(text, {key_name: key.public_key}, origin="pox/run/test")
    return checkpoint.size, checkpoint.root


def test_runlog_truncates_a_torn_tail_and_checkpoints_the_complete_lines(tmp_path: Path) -> None:
    key = SigningKey.generate()
    log = RunLog(tmp_path, "pox/run/test", "s0", key)
    lines = [b'{"record":%d}' % i for i in range(3)]
    for line in lines:
        log.append(line)
    log.close()
    assert checkpoint_of(tmp_path, "s0", key) == (3, rfc9162_root(lines))

    with open(tmp_path / ATTESTATIONS, "ab") as handle:
        handle.write(b'{"record":3,"half')  # the crash tore this append

    resumed_key = SigningKey.generate()
    reopened = RunLog(tmp_path, "pox/run/test", "s1", resumed_key)
    assert reopened.recovered_torn_bytes == len(b'{"record":3,"half')
    assert (tmp_path / ATTESTATIONS).read_bytes() == b"".join(line + b"\n" for line in lines)
    assert reopened.size == 3
    assert checkpoint_of(tmp_path, "s1", resumed_key) == (3, rfc9162_root(lines))

    reopened.append(b'{"record":3}')
    reopened.close()
    assert checkpoint_of(tmp_path, "s1", resumed_key) == (
        4,
        rfc9162_root([*lines, b'{"record":3}']),
    )


def test_runlog_checkpoints_complete_lines_written_after_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    key = SigningKey.generate()
    log = RunLog(
        tmp_path, "pox/run/test", "s0", key, checkpoint_now=False, checkpoint_interval_s=3600
    )
    log.append(b'{"record":0}')
    # a crash between the fsync of a line and the checkpoint that covers it (the interval
    # defers this one; nothing closes the log)
    log.append(b'{"record":1}')
    assert checkpoint_of(tmp_path, "s0", key)[0] == 1

    reopened = RunLog(tmp_path, "pox/run/test", "s0", key)
    assert reopened.recovered_torn_bytes == 0
    lines = [b'{"record":0}', b'{"record":1}']
    assert checkpoint_of(tmp_path, "s0", key) == (2, rfc9162_root(lines))


def test_runlog_checkpoints_a_burst_of_appends_within_the_interval(tmp_path: Path) -> None:
    key = SigningKey.generate()
    log = RunLog(
        tmp_path, "pox/run/test", "s0", key, checkpoint_now=False, checkpoint_interval_s=0.2
    )
    lines = [b'{"record":%d}' % i for i in range(5)]
    for line in lines:
        log.append(line)
    # every line is in the file at once, the checkpoint covers the burst once the interval ends
    assert (tmp_path / ATTESTATIONS).read_bytes() == b"".join(line + b"\n" for line in lines)
    assert checkpoint_of(tmp_path, "s0", key)[0] == 1
    deadline = time.monotonic() + 10
    while checkpoint_of(tmp_path, "s0", key)[0] != 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint_of(tmp_path, "s0", key) == (5, rfc9162_root(lines))
    log.close()
