"""What a sandboxed job needs to work like a local one (issue 9 section 2): scratch space, a home,
its sources wherever they are, and outputs outside the working directory.

Real jobs in real bubblewrap through `SimRuntime.run`, as in `test_sandbox_guarantees`.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from test_sandbox_guarantees import run_job

from pox_executor.enclave.commit import wait_for_discarded_stages
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.enclave.sim import SimRuntime


def test_each_job_gets_a_private_writable_tmpdir(tmp_path: Path) -> None:
    (tmp_path / "host-file").write_text("host\n")
    workdir = tmp_path / "wd"
    # `samtools sort -T $TMPDIR` style: the variables are set (under `set -u`) and writable.
    command = (
        'set -u; test "$TMPDIR" = "$TMP" && test "$TMP" = "$TEMP" && '
        'echo scratch > "$TMPDIR/job-scratch" && printf "b\\na\\n" | sort -T "$TMPDIR" > out.txt'
        f" && ls -a /tmp >> out.txt; test ! -e {tmp_path}/host-file"
    )
    first, log = run_job(workdir, command)
    assert first.exit_code == 0, log
    assert (workdir / "out.txt").read_text().startswith("a\nb\n")
    second, log = run_job(workdir, "ls -a $TMPDIR > out.txt")
    assert second.exit_code == 0, log
    assert "job-scratch" not in (workdir / "out.txt").read_text(), "each job's /tmp is its own"
    assert not any(p.name == "job-scratch" for p in Path("/tmp").iterdir())


def test_each_job_gets_a_private_home_with_a_cache(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    command = "mkdir -p ~/.cache/snakemake && echo 1 > ~/.cache/marker && echo ok > out.txt"
    first, log = run_job(workdir, command)
    assert first.exit_code == 0, log
    second, log = run_job(workdir, "test ! -e ~/.cache/marker && echo clean > out.txt")
    assert second.exit_code == 0, f"the first job's home leaked into the second: {log}"
    assert not (Path.home() / ".cache" / "marker").exists()


def test_a_shared_home_is_the_opt_in(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    runtime = SimRuntime(shared_home=True)
    runtime.prepare(workdir)
    first, log = run_job(workdir, "echo 1 > ~/.cache/marker && echo ok > out.txt", runtime=runtime)
    second, log2 = run_job(workdir, "cat ~/.cache/marker > out.txt", runtime=runtime)
    assert first.exit_code == 0 and second.exit_code == 0, log + log2
    assert (workdir / "out.txt").read_text() == "1\n"
    assert "shared home" in runtime.describe_isolation()


def test_readable_paths_are_visible_read_only_even_below_tmp(tmp_path: Path) -> None:
    sources = tmp_path / "sources"  # a Snakefile under /tmp, outside the working directory
    sources.mkdir()
    (sources / "Snakefile").write_text("rule all:\n")
    (sources / "unrelated.txt").write_text("not declared\n")
    workdir = tmp_path / "wd"
    command = (
        f"cat {sources}/Snakefile > out.txt; "
        f"test ! -e {sources}/unrelated.txt && ! echo x 2>/dev/null >> {sources}/Snakefile"
    )
    outcome, log = run_job(workdir, command, readable=(str(sources / "Snakefile"),))
    assert outcome.exit_code == 0, log
    assert (workdir / "out.txt").read_text() == "rule all:\n"
    assert (sources / "Snakefile").read_text() == "rule all:\n"


def test_declared_outputs_outside_the_workdir_are_committed_undeclared_writes_discarded(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "project" / "wd"
    scratch = tmp_path / "scratch"
    (scratch / "results").mkdir(parents=True)
    workdir.mkdir(parents=True)
    (workdir / "results").symlink_to(scratch / "results")  # results/ on a scratch disk
    in_tmp = Path("/tmp") / f"pox-out-{uuid.uuid4().hex}.txt"
    absolute = tmp_path / "elsewhere" / "abs.txt"  # its directory does not exist yet
    outputs = (str(absolute), "../up.txt", "results/r.txt", str(in_tmp), "in.txt")
    command = (
        f"echo abs > {absolute} && echo up > ../up.txt && echo r > results/r.txt && "
        f"echo tmp > {in_tmp} && echo in > in.txt && "
        "echo no > ../undeclared.txt && echo no > results/undeclared.txt"
    )
    try:
        outcome, log = run_job(workdir, command, outputs=outputs)
        assert outcome.exit_code == 0, log
        assert absolute.read_text() == "abs\n"
        assert (tmp_path / "project" / "up.txt").read_text() == "up\n"
        assert (scratch / "results" / "r.txt").read_text() == "r\n"
        assert in_tmp.read_text() == "tmp\n"
        assert (workdir / "in.txt").read_text() == "in\n"
    finally:
        in_tmp.unlink(missing_ok=True)
    assert not (tmp_path / "project" / "undeclared.txt").exists()
    assert not (scratch / "results" / "undeclared.txt").exists()
    discarded = " ".join(outcome.discarded_writes)
    assert "undeclared.txt" in discarded, outcome.discarded_writes
    wait_for_discarded_stages()  # removed off the job's path, on a background thread
    assert not list((workdir / ".pox" / "stage").iterdir()), "the stage is cleaned up"


def test_an_output_outside_the_workdir_keeps_its_siblings_readable(tmp_path: Path) -> None:
    # An earlier job's result in the same outside directory is the next job's input.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "earlier.txt").write_text("earlier\n")
    workdir = tmp_path / "wd"
    target = scratch / "later.txt"
    outcome, log = run_job(
        workdir,
        f"cat {scratch}/earlier.txt > {target}",
        outputs=(str(target),),
        readable=(str(scratch / "earlier.txt"),),
    )
    assert outcome.exit_code == 0, log
    assert target.read_text() == "earlier\n"


def test_without_isolation_jobs_still_get_a_tmpdir_and_a_filtered_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_API_TOKEN", "t0ken")
    workdir = tmp_path / "wd"
    workdir.mkdir()
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    spec = JobSpec(
        invocation_id="plain",
        command='set -u; echo x > "$TMPDIR/f" && echo "$TMPDIR" > out.txt && env >> out.txt',
        workdir=workdir,
        outputs=(OutputSpec("out.txt"),),
        log_path=tmp_path / "plain.log",
    )
    outcome = runtime.run(spec, threading.Event())
    assert outcome.exit_code == 0, (tmp_path / "plain.log").read_text()
    report = (workdir / "out.txt").read_text()
    tmpdir = Path(report.splitlines()[0])
    wait_for_discarded_stages()  # removed off the job's path, before the run ends
    assert tmpdir.is_relative_to(workdir / ".pox") and not tmpdir.exists(), "private, removed"
    assert "t0ken" not in report and "LAB_API_TOKEN" not in outcome.environment_names
    assert not outcome.isolated


def test_many_readable_files_are_exposed_through_their_directory(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    names = [inputs / f"{i}.txt" for i in range(600)]  # more than one bind each would allow
    for path in names:
        path.write_text("1\n")
    (inputs.parent / "beside.txt").write_text("not declared\n")
    workdir = tmp_path / "wd"
    outcome, log = run_job(
        workdir,
        f"cat {inputs}/*.txt | wc -l > out.txt; test ! -e {tmp_path}/beside.txt",
        readable=tuple(map(str, names)),
    )
    assert outcome.exit_code == 0, log
    assert (workdir / "out.txt").read_text().strip() == "600"
