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
    env = snakemake_env(workdir) | {"SLURM_CONF": str(cluster.state / "slurm.conf")}
    command = [sys.executable, "-m", "snakemake", "--executor", "pox", "--pox-dispatch", "slurm"]
    return subprocess.Popen(
        [*command, "--cores", "8", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout_s: float = 300) -> str:
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


def test_a_job_killed_by_scancel_is_a_failed_attempt_then_retried(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    workdir = _workflow(tmp_path)
    process = _snakemake(slurm_cluster, workdir, "--retries", "1", "--config", "parts=2", "slow=0")
    run_id = _run_id(workdir)

    def slow_job_running() -> str | None:
        for slurm_id, state, _, comment in _slurm_jobs(slurm_cluster, run_id):
            if state == "RUNNING" and "rule_part_wildcards_0" in comment:
                return slurm_id
        return None

    slurm_id = _wait_for(slow_job_running, 90, "the slow part job to run")
    time.sleep(2)  # let its jobstep start the job
    slurm_cluster.run("scancel", slurm_id)
    _finish(process)
    _verify(workdir)
    attempts = [_internal(s) for s in _jobs(_log(workdir)) if _rule(s) == "part"]
    by_job: dict[int, list[tuple[int, str]]] = {}
    for a in attempts:
        by_job.setdefault(a["jobid"], []).append((a["attempt"], a["status"]))
    assert sorted(sorted(v) for v in by_job.values()) == [
        [(1, "failed"), (2, "succeeded")],
        [(1, "succeeded")],
    ], by_job


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
