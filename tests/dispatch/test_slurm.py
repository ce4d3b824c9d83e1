"""`snakemake --executor pox --pox-dispatch slurm` on a real SLURM cluster (conftest): jobs run as
SLURM batch jobs on two nodes, their statements are signed on the node and collected into one
log that `pox verify` accepts; a job killed with `scancel` is a failed attempt that is retried;
slurmd stopped and restarted mid-run loses nothing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import Cluster
from poxrun import pox, snakemake_env

WORKFLOW = Path(__file__).parent / "workflow"
JOB_PREDICATE = "https://slsa.dev/provenance/v1"


def _workflow(tmp_path: Path) -> Path:
    workdir = tmp_path / "wf"
    shutil.copytree(WORKFLOW, workdir)
    return workdir


def _snakemake(cluster: Cluster, workdir: Path, *args: str) -> subprocess.Popen[str]:
    env = snakemake_env(workdir) | {
        "SLURM_CONF": str(cluster.state / "slurm.conf"),
        "POX_COLLECT_GRACE_S": "12",  # > the cluster's KillWait (10 s): SIGTERMed jobsteps finish
    }
    command = [sys.executable, "-m", "snakemake", "--executor", "pox", "--pox-dispatch", "slurm"]
    return subprocess.Popen(
        [*command, "--cores", "8", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout_s: float = 480) -> str:
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output[-6000:]
    return output


def _log(workdir: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(envelope, statement) of each line of the workdir's one run bundle."""
    (bundle,) = (workdir / ".pox" / "runs").iterdir()
    lines = (bundle / "attestations.intoto.jsonl").read_bytes().splitlines()
    envelopes = [json.loads(line) for line in lines]
    return [(e, json.loads(base64.b64decode(e["payload"]))) for e in envelopes]


def _internal(statement: dict[str, Any]) -> dict[str, Any]:
    internal: dict[str, Any] = statement["predicate"]["buildDefinition"]["internalParameters"]
    return internal


def _rule(statement: dict[str, Any]) -> str:
    return str(statement["predicate"]["buildDefinition"]["externalParameters"]["rule"])


def _jobs(log: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    return [s for _, s in log if s["predicateType"] == JOB_PREDICATE]


def _verify(workdir: Path) -> None:
    result = pox("verify", "--allow-simulated", cwd=workdir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _slurm_jobs(cluster: Cluster, run_id: str | None = None) -> list[list[str]]:
    """[id, state, node, comment] of the jobs the cluster remembers (of one run: by job name)."""
    argv = ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N|%k"]
    if run_id:
        argv += ["--name", run_id]
    return [line.split("|", 3) for line in cluster.run(*argv).stdout.splitlines() if line]


def _wait_for(condition: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _run_id(workdir: Path) -> str:
    runs = workdir / ".pox" / "runs"
    found = _wait_for(lambda: runs.is_dir() and list(runs.iterdir()), 60, "the run bundle")
    return str(found[0].name)


def test_workflow_through_slurm_is_signed_on_the_nodes_and_verifies(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    workdir = _workflow(tmp_path)
    _finish(_snakemake(slurm_cluster, workdir, "--config", "parts=6", "pause=2", "run_block=1"))
    _verify(workdir)
    log = _log(workdir)
    session_keyid = log[0][0]["signatures"][0]["keyid"]
    jobs = [(e, s) for e, s in log if s["predicateType"] == JOB_PREDICATE]
    assert sorted(_rule(s) for _, s in jobs) == sorted(["all", "summary"] + ["part"] * 6)
    # every job was signed on its node, each with a key of its own, none with the session key
    keyids = [e["signatures"][0]["keyid"] for e, _ in jobs]
    assert session_keyid not in keyids and len(set(keyids)) == len(keyids)
    # one run, one log, jobs spread over both slurmd nodes
    run_id = _internal(jobs[0][1])["run_id"]
    nodes = {job[2] for job in _slurm_jobs(slurm_cluster, run_id)}
    assert {"pox-node1", "pox-node2"} <= nodes, nodes
    assert (workdir / "summary.txt").read_text().count("alpha") == 6


def _kill_jobstep(workdir: Path, slurm_id: str) -> None:
    """SIGKILL the `pox jobstep` process of one job of this run (found by its ticket path)."""
    tickets = str(workdir / ".pox" / "dispatch")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobstep" in argv and any(a.decode().startswith(tickets) for a in argv if a):
            if f"SLURM_JOB_ID={slurm_id}".encode() in environ:
                os.kill(int(proc.name), signal.SIGKILL)
                return
    raise AssertionError(f"no pox jobstep process of SLURM job {slurm_id}")


def test_jobs_killed_by_scancel_are_failed_attempts_then_retried(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    """Part 0 is cancelled with scancel (SIGTERM): its jobstep records the stopped attempt
    (node-signed). Part 1's jobstep is killed with SIGKILL (what KillWait or a lost node leaves):
    nothing comes from the node, so the head records the lost attempt (session-signed) after
    the grace period. Both are retried; part 2 runs once."""
    workdir = _workflow(tmp_path)
    process = _snakemake(
        slurm_cluster, workdir, "--retries", "1", "--config", "parts=3", "slow=0,1"
    )
    run_id = _run_id(workdir)

    logs = workdir / ".pox" / "runs" / run_id / "logs"

    def running(part: str) -> str | None:
        """The SLURM id of the part's job once its jobstep has started the job (its log exists:
        a jobstep killed while still starting up leaves nothing, the other case tested here)."""
        for slurm_id, state, _, comment in _slurm_jobs(slurm_cluster, run_id):
            invocation = comment.split()[1] if comment.startswith("pox ") else ""
            started = invocation and (logs / f"{invocation}.log").exists()
            if state == "RUNNING" and comment.endswith(f"_wildcards_{part}") and started:
                return slurm_id
        return None

    term = _wait_for(lambda: running("0"), 120, "slow part 0 to run")
    kill = _wait_for(lambda: running("1"), 120, "slow part 1 to run")
    slurm_cluster.run("scancel", term)
    _kill_jobstep(workdir, kill)
    _finish(process)
    _verify(workdir)
    log = _log(workdir)
    session_keyid = log[0][0]["signatures"][0]["keyid"]
    by_part: dict[str, list[tuple[int, str, bool]]] = {}
    for envelope, statement in log:
        if statement["predicateType"] != JOB_PREDICATE or _rule(statement) != "part":
            continue
        part = statement["predicate"]["buildDefinition"]["externalParameters"]["wildcards"]["i"]
        internal = _internal(statement)
        by_head = envelope["signatures"][0]["keyid"] == session_keyid
        by_part.setdefault(part, []).append((internal["attempt"], internal["status"], by_head))
    assert sorted(by_part["0"]) == [(1, "failed", False), (2, "succeeded", False)], by_part
    assert sorted(by_part["1"]) == [(1, "failed", True), (2, "succeeded", False)], by_part
    assert by_part["2"] == [(1, "succeeded", False)], by_part


def test_slurmd_stopped_and_restarted_mid_run_loses_nothing(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    workdir = _workflow(tmp_path)
    process = _snakemake(slurm_cluster, workdir, "--config", "parts=4", "pause=5")
    run_id = _run_id(workdir)
    _wait_for(
        lambda: any(j[1] == "RUNNING" for j in _slurm_jobs(slurm_cluster, run_id)),
        90,
        "a running job",
    )
    for node in ("pox-node1", "pox-node2"):
        os.kill(slurm_cluster.slurmd_pid(node), signal.SIGTERM)
    time.sleep(4)
    slurm_cluster.up()  # idempotent: starts the two slurmd again
    _finish(process)
    _verify(workdir)
    jobs = _jobs(_log(workdir))
    assert all(_internal(s)["status"] == "succeeded" for s in jobs), jobs
    assert sorted(_rule(s) for s in jobs) == sorted(["all", "summary"] + ["part"] * 4)


def test_a_job_slurm_refuses_is_a_clear_error(slurm_cluster: Cluster, tmp_path: Path) -> None:
    workdir = _workflow(tmp_path)
    process = _snakemake(slurm_cluster, workdir, "--set-resources", "part:slurm_partition=nosuch")
    output, _ = process.communicate(timeout=240)
    assert process.returncode != 0
    assert "could not be submitted to SLURM (it did not run)" in output, output[-3000:]
    assert "invalid partition" in output.lower(), output[-3000:]
