"""What keeps a sandboxed job's own path short (benchmarks/README.md), checked on real jobs in
real bubblewrap: the overlay's unmount does not sync the host file system, and the stage is
removed off the job's path but before the run ends (the probe's stage before `prepare`
returns: a run with nothing to do may never shut the executor down)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from test_sandbox_guarantees import run_job

from pox_executor.enclave.commit import wait_for_discarded_stages
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.enclave.sim import SimRuntime


def test_the_job_overlay_is_volatile(tmp_path: Path) -> None:
    # Without `volatile`, unmounting the overlay when the job's last process exits syncs the
    # whole upper file system (every dirty page on the host's disk) on the job's path.
    outcome, log = run_job(tmp_path / "wd", "grep ' pox-job ' /proc/self/mountinfo > out.txt")
    assert outcome.exit_code == 0, log
    mounts = (tmp_path / "wd" / "out.txt").read_text().splitlines()
    assert mounts, "the working directory is an overlay"
    assert all("volatile" in line.split(" - ")[1] for line in mounts), mounts


def test_stages_are_removed_once_the_run_waits_for_them(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    runtime = SimRuntime()
    runtime.prepare(workdir)
    assert runtime.isolated, runtime.describe_isolation()
    assert not list((workdir / ".pox" / "stage").iterdir()), "the probe's stage is gone"
    for n in range(3):
        spec = JobSpec(
            invocation_id=uuid.uuid4().hex,
            command=f"echo {n} > out.txt && mkdir -p scratch && echo x > scratch/undeclared",
            workdir=workdir,
            outputs=(OutputSpec("out.txt"),),
            log_path=tmp_path / f"{n}.log",
        )
        outcome = runtime.run(spec, threading.Event())
        assert outcome.exit_code == 0, (tmp_path / f"{n}.log").read_text()
        assert (workdir / "out.txt").read_text() == f"{n}\n", "committed before run() returns"
        assert not (workdir / "scratch").exists()
    wait_for_discarded_stages()
    assert not list((workdir / ".pox" / "stage").iterdir()), "probe and job stages removed"
