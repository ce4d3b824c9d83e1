"""The bubblewrap sandbox: what a job sees of /tmp, and what it may write."""

from __future__ import annotations

import subprocess
from pathlib import Path

from poxrun import require_sandbox_tools

from pox_executor.enclave.commit import commit_job_outputs
from pox_executor.enclave.isolation import create_sandbox, sandbox_launch
from pox_executor.enclave.runtime import JobSpec, OutputSpec, exec_command


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


def test_a_program_and_its_arguments_run_without_a_shell_in_between(tmp_path: Path) -> None:
    # A plain shell job's argv goes to bubblewrap as it is (one `sh` start less per job): no
    # shell parses the arguments on the way, so quotes, `$` and backticks arrive unchanged.
    require_sandbox_tools()
    workdir = tmp_path / "wf"
    workdir.mkdir()
    tricky = 'a\'b "c" $HOME `id` ; |'
    argv = ["/usr/bin/printf", "%s", tricky]
    sandbox = create_sandbox(tmp_path / "stage")
    launch = sandbox_launch(argv, workdir=workdir, sandbox=sandbox, network=False, visible=[])
    assert list(launch.bwrap[-4:]) == ["--", *argv]
    printed = subprocess.run(launch.chain(), cwd=workdir, capture_output=True, check=False)
    commit_job_outputs(sandbox, workdir, [])
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.decode() == tricky
    # a command line still goes through `sh -c`
    sandbox = create_sandbox(tmp_path / "stage")
    launch = sandbox_launch("echo $((1+1))", workdir=workdir, sandbox=sandbox, network=False)
    printed = subprocess.run(launch.chain(), cwd=workdir, capture_output=True, check=False)
    commit_job_outputs(sandbox, workdir, [])
    assert printed.stdout == b"2\n"


def test_a_job_spec_execs_its_argv_or_runs_its_command_through_sh(tmp_path: Path) -> None:
    argv = ("/usr/bin/bash", "-c", "echo 'it''s' > out.txt")
    spec = JobSpec(
        invocation_id="x",
        command=exec_command(argv),
        argv=argv,
        workdir=tmp_path,
        outputs=(),
        log_path=tmp_path / "log",
    )
    assert spec.shell_argv() == list(argv)
    # the command line starts exactly the same program and arguments
    shown = subprocess.run(
        ["sh", "-c", spec.command.replace("exec ", "exec printf '%s\\n' ", 1)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.splitlines() == list(argv)
    plain = JobSpec(
        invocation_id="y", command="echo hi", workdir=tmp_path, outputs=(), log_path=tmp_path
    )
    assert plain.shell_argv() == ["sh", "-c", "echo hi"]
