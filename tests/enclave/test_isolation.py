"""The bubblewrap sandbox: what a job sees of /tmp, and what it may write."""

from __future__ import annotations

import subprocess
from pathlib import Path

from poxrun import require_sandbox_tools

from pox_executor.enclave.commit import commit_job_outputs
from pox_executor.enclave.isolation import create_sandbox, sandbox_launch
from pox_executor.enclave.runtime import OutputSpec


def run_in_sandbox(workdir: Path, command: str, *, visible: list[Path]) -> tuple[int, list[str]]:
    sandbox = create_sandbox(workdir.parent / "stage")
    launch = sandbox_launch(
        command, workdir=workdir, sandbox=sandbox, network=False, visible=visible
    )
    argv = launch.chain()  # every step a program, as for an ordinary user
    code = subprocess.run(argv, cwd=workdir, check=False).returncode
    result = commit_job_outputs(sandbox, workdir, [OutputSpec("out.txt")])
    return code, [*result.discarded, *result.rejected]


def test_paths_below_tmp_that_the_job_needs_stay_readable(tmp_path: Path) -> None:
    # A checkout (and its virtualenv) below /tmp, as in a CI clone, must survive the private /tmp.
    require_sandbox_tools()
    checkout = tmp_path / "checkout"
    workdir = checkout / "workflows" / "wf"
    workdir.mkdir(parents=True)
    (checkout / "tool.txt").write_text("tool\n")
    (tmp_path / "secret.txt").write_text("not for jobs\n")
    code, _ = run_in_sandbox(workdir, f"cat {checkout}/tool.txt > out.txt", visible=[checkout])
    assert code == 0
    assert (workdir / "out.txt").read_text() == "tool\n"
    code, _ = run_in_sandbox(workdir, f"cat {tmp_path}/secret.txt", visible=[checkout])
    assert code != 0, "the rest of /tmp is private to the job"


def test_the_visible_paths_are_read_only_and_the_workdir_stays_writable(tmp_path: Path) -> None:
    require_sandbox_tools()
    checkout = tmp_path / "checkout"
    workdir = checkout / "wf"
    workdir.mkdir(parents=True)
    code, _ = run_in_sandbox(workdir, f"touch {checkout}/x", visible=[checkout])
    assert code != 0 and not (checkout / "x").exists()
    code, discarded = run_in_sandbox(
        workdir, "echo ok > out.txt; echo no > other.txt", visible=[checkout]
    )
    assert code == 0 and (workdir / "out.txt").read_text() == "ok\n"
    assert not (workdir / "other.txt").exists() and discarded == ["wrote other.txt"]
