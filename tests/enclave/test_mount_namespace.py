"""How the sim backend starts and clears sandboxes: in-process mount namespaces (`mountns`) and
the `unshare` chain they replace as root (same sandbox, fewer programs per job), the run's memo
of read-only binds, and stages removed off the job's path."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from ci_mode import missing_tool
from poxrun import require_sandbox_tools

from pox_executor.enclave import mountns
from pox_executor.enclave.commit import wait_for_discarded_stages
from pox_executor.enclave.isolation import (
    Sandbox,
    SandboxLaunch,
    ViewMemo,
    create_sandbox,
    sandbox_launch,
)
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.enclave.sim import SimRuntime


def _require_root() -> None:
    require_sandbox_tools()
    if not mountns.supported():
        missing_tool("in-process mount namespaces need root (CI runs as root)")


def _mounted(path: Path) -> bool:
    """Whether `path` is a mount point in this (the host's) mount namespace."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return any(line.split()[4] == str(path) for line in handle)


def test_the_overlay_is_mounted_for_the_job_only_and_gone_with_it(tmp_path: Path) -> None:
    _require_root()
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    (lower / "seen.txt").write_text("from the lower layer\n")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    seen_from_host: list[bool] = []

    def job() -> str:
        seen_from_host.append(_mounted(merged))
        script = f"cat {merged}/seen.txt; echo written > {merged}/new.txt"
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout

    assert mountns.run_with_overlays([(options, str(merged))], job) == "from the lower layer\n"
    assert seen_from_host == [False], "the host's mount namespace never holds the overlay"
    assert (upper / "new.txt").read_text() == "written\n", "writes went to the upper layer"
    assert not (lower / "new.txt").exists()
    assert not _mounted(merged) and list(merged.iterdir()) == []


def test_a_failing_mount_names_the_mount_point_and_runs_nothing(tmp_path: Path) -> None:
    _require_root()
    ran: list[bool] = []
    missing = tmp_path / "no-such-mount-point"
    options = f"lowerdir={tmp_path},upperdir={tmp_path}/u,workdir={tmp_path}/w"
    with pytest.raises(mountns.MountNamespaceError, match=str(missing)):
        mountns.run_with_overlays([(options, str(missing))], lambda: ran.append(True))
    assert ran == []


def _spec(workdir: Path, command: str, outputs: tuple[str, ...]) -> JobSpec:
    invocation = uuid.uuid4().hex
    return JobSpec(
        invocation_id=invocation,
        command=command,
        workdir=workdir,
        outputs=tuple(OutputSpec(o) for o in outputs),
        log_path=workdir.parent / f"{invocation}.log",
    )


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "unshare-chain"])
def test_both_ways_to_start_a_sandbox_give_the_same_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    _require_root()
    if not in_process:  # what a non-root user gets
        monkeypatch.setattr(mountns, "supported", lambda: False)
    workdir = tmp_path / "wf"
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "in.txt").write_text("input\n")
    runtime = SimRuntime()
    runtime.prepare(workdir)
    assert runtime.isolated, runtime.describe_isolation()
    assert runtime._in_process_mounts is in_process
    command = (
        "cat data/in.txt > out/a.txt; echo scratch > undeclared.txt; "
        "if touch /usr/pox-x 2>/dev/null; then echo WROTE-USR; fi; cat /proc/self/status"
    )
    (workdir / "out").mkdir()
    spec = _spec(workdir, command, ("out/a.txt",))
    outcome = runtime.run(spec, threading.Event())
    log = spec.log_path.read_text()
    assert outcome.exit_code == 0 and outcome.isolated, log
    assert "WROTE-USR" not in log and not Path("/usr/pox-x").exists()
    assert "CapEff:\t0000000000000000" in log, "no capabilities either way"
    assert (workdir / "out" / "a.txt").read_text() == "input\n"
    assert not (workdir / "undeclared.txt").exists()
    assert outcome.discarded_writes == ("wrote undeclared.txt",)
    wait_for_discarded_stages()
    assert not any((workdir / ".pox" / "stage").iterdir()), "no stage is left behind"


def test_a_cancelled_job_in_its_own_namespace_stops_and_leaves_no_mount(tmp_path: Path) -> None:
    _require_root()
    workdir = tmp_path / "wf"
    workdir.mkdir()
    runtime = SimRuntime()
    runtime.prepare(workdir)
    assert runtime._in_process_mounts
    marker = workdir / "started"
    spec = _spec(workdir, f"touch {marker}; sleep 300", ("never.txt",))
    cancelled = threading.Event()
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(runtime.run(spec, cancelled)))
    started = time.monotonic()
    worker.start()
    stage = workdir / ".pox" / "stage" / spec.invocation_id
    deadline = time.monotonic() + 30
    while not (stage / "upper" / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (stage / "upper" / "started").exists(), "the job started in its sandbox"
    cancelled.set()
    worker.join(timeout=60)
    assert not worker.is_alive() and time.monotonic() - started < 60
    assert outcomes and outcomes[0].exit_code != 0
    wait_for_discarded_stages()
    assert not stage.exists() and not _mounted(stage / "merged")
    assert (
        "sleep 300"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    )


def test_the_run_memo_resolves_the_visible_paths_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pox_executor.enclave import isolation

    workdir = tmp_path / "wf"
    workdir.mkdir()
    tool = tmp_path / "tool"
    tool.mkdir()
    calls: list[int] = []
    original = isolation._readable_binds
    monkeypatch.setattr(
        isolation,
        "_readable_binds",
        lambda paths, covered: calls.append(1) or original(paths, covered),
    )
    memo = ViewMemo()
    argvs = []
    for n in range(3):
        sandbox = create_sandbox(tmp_path / "stage" / str(n))
        launch = sandbox_launch(
            "true", workdir=workdir, sandbox=sandbox, network=False, visible=[tool], memo=memo
        )
        argvs.append([a for a in launch.bwrap if str(tool) in a])
    assert calls == [1], "three jobs seeing the same paths resolve them once"
    assert argvs[0] == argvs[1] == argvs[2] == [str(tool), str(tool)]
    sandbox = create_sandbox(tmp_path / "stage" / "new")
    sandbox_launch(
        "true", workdir=workdir, sandbox=sandbox, network=False, visible=[tool], memo=ViewMemo()
    )
    assert len(calls) == 2, "a new run (a new memo) resolves them again"


def test_stages_an_interrupted_run_left_aside_are_removed_and_live_ones_kept(
    tmp_path: Path,
) -> None:
    require_sandbox_tools()
    workdir = tmp_path / "wf"
    stage_root = workdir / ".pox" / "stage"
    leftover = stage_root / ".discarded-abc-123"
    (leftover / "upper").mkdir(parents=True)
    (leftover / "upper" / "big.bin").write_bytes(b"x" * 1024)
    live = stage_root / "another-runs-job"  # a concurrent run's stage: not ours to remove
    (live / "upper").mkdir(parents=True)
    dead_spare = stage_root / ".spare-4194305-abc"  # above any pid_max: its process is gone
    (dead_spare / "upper").mkdir(parents=True)
    live_spare = stage_root / f".spare-{os.getpid()}-abc"  # a running process's spare
    (live_spare / "upper").mkdir(parents=True)
    dead_warm = stage_root / ".warm-4194305-abc"  # a killed run's warm sandbox (warm.py)
    (dead_warm / "upper").mkdir(parents=True)
    live_warm = stage_root / f".warm-{os.getpid()}-abc"
    (live_warm / "upper").mkdir(parents=True)
    runtime = SimRuntime()
    runtime.prepare(workdir)
    assert not leftover.exists() and not dead_spare.exists() and not dead_warm.exists()
    assert (live / "upper").is_dir() and (live_spare / "upper").is_dir()
    assert (live_warm / "upper").is_dir()


def _spares(workdir: Path) -> list[Path]:
    return sorted((workdir / ".pox" / "stage").glob(".spare-*"))


def _reuse_runtime(tmp_path: Path) -> tuple[SimRuntime, Path]:
    require_sandbox_tools()
    workdir = tmp_path / "wf"
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "in.txt").write_text("input\n")
    (workdir / "out").mkdir()
    runtime = SimRuntime()
    runtime.prepare(workdir)
    assert runtime.isolated, runtime.describe_isolation()
    # These tests look at the stages themselves: no warm sandbox (warm.py) may take a spare on
    # its own thread meanwhile (test_warm_sandbox.py covers those).
    runtime._warm = None
    return runtime, workdir


# What a job sees of its stage: its /tmp, the mode and attributes of its working directory.
LOOK = (
    "ls -A /tmp > {out}; stat -c %a . >> {out}; "
    "python3 -c 'import os; print(sorted(os.listxattr(\".\")))' >> {out}"
)


def test_a_clean_stage_is_kept_for_the_next_job(tmp_path: Path) -> None:
    runtime, workdir = _reuse_runtime(tmp_path)
    first = _spec(workdir, "cat data/in.txt > out/a.txt", ("out/a.txt",))
    assert runtime.run(first, threading.Event()).exit_code == 0
    spares = _spares(workdir)
    assert len(spares) == 1, "the job left its stage clean: it is kept"
    upper = (spares[0] / "upper").stat().st_ino
    assert sorted(p.name for p in spares[0].iterdir()) == ["merged", "tmp", "upper", "work"]
    assert not any((spares[0] / "upper").iterdir()) and not any((spares[0] / "tmp").iterdir())

    second = _spec(workdir, LOOK.format(out="out/b.txt"), ("out/b.txt",))
    seen: list[int] = []
    original = runtime._launch

    def launch(spec: JobSpec, sandbox: Sandbox) -> tuple[SandboxLaunch | None, dict[str, str]]:
        seen.append(sandbox.upper.stat().st_ino)
        return original(spec, sandbox)

    runtime._launch = launch  # type: ignore[method-assign]
    assert runtime.run(second, threading.Event()).exit_code == 0
    assert seen == [upper], "the next job's stage is the kept one"
    assert _spares(workdir) != [] and (workdir / "out" / "a.txt").read_text() == "input\n"
    wait_for_discarded_stages()
    assert not any((workdir / ".pox" / "stage").iterdir()), "the run's end removes spares"


@pytest.mark.parametrize(
    "polluting",
    [
        "echo secret > /tmp/left.txt",
        "mkdir -p /tmp/left/deeper",
        "chmod 700 .",
        'python3 -c \'import os; os.setxattr(".", "user.pox", b"1")\'',
        "echo x > undeclared.txt",
        "rm data/in.txt",
    ],
    ids=["tmp-file", "tmp-folders", "workdir-mode", "workdir-xattr", "undeclared", "deletion"],
)
def test_the_next_job_sees_nothing_a_job_left_in_its_stage(tmp_path: Path, polluting: str) -> None:
    runtime, workdir = _reuse_runtime(tmp_path)
    fresh = _spec(workdir, LOOK.format(out="out/fresh.txt"), ("out/fresh.txt",))
    assert runtime.run(fresh, threading.Event()).exit_code == 0
    wait_for_discarded_stages()  # so the next job starts from a new stage
    expected = (workdir / "out" / "fresh.txt").read_text()

    first = _spec(workdir, f"{polluting}; echo done > out/a.txt", ("out/a.txt",))
    assert runtime.run(first, threading.Event()).exit_code == 0, first.log_path.read_text()
    kept = _spares(workdir)
    second = _spec(workdir, LOOK.format(out="out/b.txt"), ("out/b.txt",))
    assert runtime.run(second, threading.Event()).exit_code == 0
    assert (workdir / "out" / "b.txt").read_text() == expected, f"after {polluting!r}"
    if "/tmp/left/" in polluting:
        assert len(kept) == 1, "empty folders are removed and the stage kept"
    else:
        assert kept == [], f"a stage changed by {polluting!r} is not kept"
    assert (workdir / "data" / "in.txt").exists() and not (workdir / "undeclared.txt").exists()
    wait_for_discarded_stages()
