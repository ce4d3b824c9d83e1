"""Warm sandboxes (`enclave/warm.py`): the next job's sandbox started ahead. A job that starts in
one must see and leave exactly what a job started cold does, a job whose view differs must start
cold, and nothing of a warm sandbox may outlive the run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from poxrun import require_sandbox_tools

from pox_executor.enclave import warm
from pox_executor.enclave.commit import wait_for_discarded_stages
from pox_executor.enclave.runtime import JobSpec, OutputSpec, exec_command
from pox_executor.enclave.sim import SimRuntime

# What a job can observe of how it was started: its environment, open descriptors, stdin,
# process tree, private /tmp and home, working directory, mounts and capabilities.
PROBE = r"""
set -u
{
  echo "argv0=$0 args=$*"
  env | grep -v '^_=' | sort
  ls /proc/self/fd | sort -n | tr '\n' ' '; echo
  readlink /proc/self/fd/0; read -r line || echo "stdin: end of file"
  echo "pid=$$ ppid=$PPID"
  ps -eo pid,comm > "$HOME/ps"; grep -v ' 1 ' "$HOME/ps"  # 1: bubblewrap
  ls -A /tmp "$HOME"; pwd
  grep CapEff /proc/self/status
  awk '{print $5, $9}' /proc/self/mountinfo | grep -v '^/proc/' | sort
} > out/{name}.txt
"""


def _spec(
    workdir: Path, name: str, *, outputs: tuple[str, ...] = (), network: bool = False
) -> JobSpec:
    invocation = uuid.uuid4().hex
    argv = ("/usr/bin/bash", "-c", PROBE.replace("{name}", name), "arg-one")
    return JobSpec(
        invocation_id=invocation,
        command=exec_command(argv),
        argv=argv,
        workdir=workdir,
        outputs=(OutputSpec(f"out/{name}.txt"), *(OutputSpec(o) for o in outputs)),
        log_path=workdir.parent / "logs" / f"{invocation}.log",
        network=network,
    )


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many jobs were handed to a warm sandbox (a spy on the real `WarmSandbox.start`)."""
    calls: list[int] = []
    real = warm.WarmSandbox.start

    def spy(self: warm.WarmSandbox, script: bytes) -> None:
        calls.append(1)
        real(self, script)

    monkeypatch.setattr(warm.WarmSandbox, "start", spy)
    return calls


def _runtime(workdir: Path) -> SimRuntime:
    require_sandbox_tools()
    (workdir / "out").mkdir(parents=True)
    runtime = SimRuntime()
    runtime.prepare(workdir)
    assert runtime.isolated, runtime.describe_isolation()
    return runtime


def _wait_warm(runtime: SimRuntime) -> None:
    """Until the runtime's warm sandboxes are ready (they start on their own threads)."""
    assert runtime._warm is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        idle = list(runtime._warm._idle)
        if idle and all(w.usable() for w in idle):
            return
        time.sleep(0.02)
    raise AssertionError("no warm sandbox became ready")


def _bwrap_children() -> list[str]:
    out = subprocess.run(["ps", "-eo", "ppid,args"], capture_output=True, text=True).stdout
    mine = str(os.getpid())
    return [line for line in out.splitlines() if line.split()[0] == mine and "bwrap" in line]


def test_a_job_in_a_warm_sandbox_sees_what_a_cold_one_sees(
    tmp_path: Path, started: list[int]
) -> None:
    workdir = tmp_path / "wf"
    runtime = _runtime(workdir)
    for name in ("first", "cold"):
        assert runtime.run(_spec(workdir, name), threading.Event()).exit_code == 0
    assert started == [], "a view is warmed from its second job on"
    _wait_warm(runtime)
    hot = _spec(workdir, "warm")
    outcome = runtime.run(hot, threading.Event())
    assert started == [1], "the next job started in a warm sandbox"
    assert outcome.exit_code == 0 and outcome.isolated, hot.log_path.read_text()
    seen_cold = (workdir / "out" / "cold.txt").read_text()
    seen_warm = (workdir / "out" / "warm.txt").read_text()
    assert seen_warm == seen_cold.replace("out/cold.txt", "out/warm.txt")
    assert "argv0=arg-one args=\n" in seen_warm and "stdin: end of file" in seen_warm
    assert "\n0 1 2 3 \n" in seen_warm, "no descriptor but stdio (3: the listing itself)"
    assert "CapEff:\t0000000000000000" in seen_warm
    assert outcome.discarded_writes == () and hot.log_path.read_text() == ""
    wait_for_discarded_stages()
    assert not _bwrap_children(), "the run's end ends the idle warm sandboxes"
    assert not any((workdir / ".pox" / "stage").iterdir()), "and removes their stages"


def test_a_job_whose_view_differs_starts_cold_and_a_warm_one_never_leaks_a_view(
    tmp_path: Path, started: list[int]
) -> None:
    workdir = tmp_path / "wf"
    runtime = _runtime(workdir)
    elsewhere = tmp_path / "scratch"
    for name in ("a1", "a2"):
        assert runtime.run(_spec(workdir, name), threading.Event()).exit_code == 0
    _wait_warm(runtime)
    # an output outside the working directory needs an overlay of its own: cold
    outside = dataclasses.replace(
        _spec(workdir, "b", outputs=(str(elsewhere / "b.txt"),)),
        argv=(),
        command=f"echo b > {elsewhere}/b.txt",
    )
    assert runtime.run(outside, threading.Event()).exit_code == 0
    assert (elsewhere / "b.txt").read_text() == "b\n"
    # the network: cold too
    assert runtime.run(_spec(workdir, "c", network=True), threading.Event()).exit_code == 0
    assert started == []
    # a job reading another path outside the working directory has a view of its own: never a
    # warm sandbox made for a view without that path
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "genome.fa").write_text(">chr1\n")
    argv = ("/usr/bin/cat", str(tmp_path / "ref" / "genome.fa"))
    reads = dataclasses.replace(
        _spec(workdir, "d"),
        argv=argv,
        command=exec_command(argv),
        outputs=(),
        readable=(str(tmp_path / "ref"),),
    )
    for n in range(3):
        job = dataclasses.replace(
            reads, invocation_id=uuid.uuid4().hex, log_path=workdir.parent / "logs" / f"r{n}.log"
        )
        if n == 2:
            _wait_warm(runtime)
        assert runtime.run(job, threading.Event()).exit_code == 0, job.log_path.read_text()
        assert job.log_path.read_text() == ">chr1\n"
        assert started == ([1] if n == 2 else []), "warm from the view's third job on"
    # the first view's sandboxes were kept meanwhile (two views at once)
    assert runtime.run(_spec(workdir, "a3"), threading.Event()).exit_code == 0
    assert started == [1, 1]
    # views seen once (each job reading a file no other job reads) are never warmed
    assert runtime._warm is not None
    for n in range(4):
        (tmp_path / f"sample{n}.txt").write_text(f"{n}\n")
        once = dataclasses.replace(
            _spec(workdir, f"s{n}"), readable=(str(tmp_path / f"sample{n}.txt"),)
        )
        assert runtime.run(once, threading.Event()).exit_code == 0
        assert not any(once.readable[0] in str(w.key) for w in runtime._warm._idle)
    assert started == [1, 1]
    wait_for_discarded_stages()
    assert not _bwrap_children()


def test_failing_and_cancelled_jobs_in_warm_sandboxes(tmp_path: Path, started: list[int]) -> None:
    workdir = tmp_path / "wf"
    runtime = _runtime(workdir)
    for name in ("first", "second"):
        assert runtime.run(_spec(workdir, name), threading.Event()).exit_code == 0
    _wait_warm(runtime)
    argv = ("/usr/bin/bash", "-c", "echo oops >&2; exit 7")
    failing = dataclasses.replace(_spec(workdir, "x"), argv=argv, command=exec_command(argv))
    outcome = runtime.run(failing, threading.Event())
    assert started == [1] and outcome.exit_code == 7
    assert failing.log_path.read_text() == "oops\n", "the job's output goes to its own log"
    _wait_warm(runtime)
    # a job log that exists already is appended to (cold), never replaced by a warm one's
    kept = dataclasses.replace(failing, invocation_id=uuid.uuid4().hex)
    kept.log_path.write_text("earlier\n")
    assert runtime.run(kept, threading.Event()).exit_code == 7
    assert kept.log_path.read_text() == "earlier\noops\n" and started == [1]
    _wait_warm(runtime)
    marker = workdir / "started"
    argv = ("/usr/bin/bash", "-c", f"touch {marker}; sleep 300")
    sleeper = dataclasses.replace(_spec(workdir, "y"), argv=argv, command=exec_command(argv))
    cancelled = threading.Event()
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(runtime.run(sleeper, cancelled)))
    worker.start()
    deadline = time.monotonic() + 30
    while started != [1, 1] and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    cancelled.set()
    worker.join(timeout=60)
    assert not worker.is_alive() and outcomes and outcomes[0].exit_code != 0
    wait_for_discarded_stages()
    assert not _bwrap_children()
    assert (
        "sleep 300"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    )


def test_the_start_script_execs_exactly_the_argv() -> None:
    argv = ["/usr/bin/printf", "%s|", "a'b", '"c" $HOME `id`', "new\nline", ""]
    script = warm.start_script(argv)
    shown = subprocess.run(["sh", "-c", ". /dev/stdin"], input=script, capture_output=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode() == 'a\'b|"c" $HOME `id`|new\nline||'
