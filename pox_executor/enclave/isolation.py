"""Process isolation with bubblewrap plus a private overlay of the working directory.

A job sees the whole filesystem read-only, a private /tmp, no network (unless asked), no
capabilities, and its working directory through an overlayfs whose upper layer is private to the
job. After the job, only its declared outputs (outputs, logs, benchmarks) are moved from the upper
layer into the real working directory; every other write, deletions included, is discarded and
reported. So the job's output locations are the only places it can change.

The overlay is mounted in a private mount namespace (`unshare --mount`, or with
`--user --map-root-user` when not root), then bubblewrap builds the sandbox inside it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pox_executor.enclave.runtime import OutputSpec

_OVERLAY_FORBIDDEN = (",", ":", "\\", "\n")


@dataclass(frozen=True)
class Sandbox:
    """Where one job's private writes live until they are committed or discarded."""

    stage: Path

    @property
    def upper(self) -> Path:
        return self.stage / "upper"

    @property
    def work(self) -> Path:
        return self.stage / "work"


@lru_cache(maxsize=1)
def bubblewrap_version() -> str | None:
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def sandbox_argv(
    command: str,
    *,
    workdir: Path,
    sandbox: Sandbox,
    network: bool,
    hidden: Sequence[Path] = (),
    visible: Sequence[Path] = (),
) -> list[str]:
    """argv that runs `command` (through `sh -c`) in the sandbox described in the docstring."""
    wd = str(workdir)
    if any(ch in wd or ch in str(sandbox.stage) for ch in _OVERLAY_FORBIDDEN):
        raise ValueError(f"path {wd!r} contains a character overlayfs options cannot carry")
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
    options = f"lowerdir={wd},upperdir={sandbox.upper},workdir={sandbox.work}"
    bwrap = [
        "bwrap",
        "--unshare-all",
        *(["--share-net"] if network else []),
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--tmpfs",
        "/tmp",
    ]
    # The private /tmp hides whatever lived there: give back, read-only, what the job needs
    # (before the working directory is bound, which may lie below one of these).
    for path in _under_tmp(visible, workdir):
        bwrap += ["--ro-bind", str(path), str(path)]
    bwrap += [
        "--bind",
        wd,
        wd,
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    for path in hidden:
        bwrap += ["--tmpfs", str(path)]
    if network:
        bwrap += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    bwrap += ["--chdir", wd, "--cap-drop", "ALL", "--", "sh", "-c", command]
    mount_then_exec = 'mount -t overlay pox-job -o "$0" "$1" && shift && exec "$@"'
    return [*unshare, "--", "sh", "-c", mount_then_exec, options, wd, *bwrap]


def _under_tmp(paths: Sequence[Path], workdir: Path) -> list[Path]:
    """The existing paths below /tmp that workdir's own bind does not cover, outermost first."""
    out: list[Path] = []
    for path in sorted({Path(os.path.realpath(p)) for p in paths}):
        if not path.exists() or not path.is_relative_to("/tmp") or path == Path("/tmp"):
            continue
        if path.is_relative_to(workdir) or any(path.is_relative_to(o) for o in out):
            continue
        out.append(path)
    return out


def interpreter_paths() -> list[Path]:
    """Where this Python and its packages live: a job that re-invokes Snakemake needs them."""
    return [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent]


def create_sandbox(stage: Path) -> Sandbox:
    sandbox = Sandbox(stage)
    shutil.rmtree(stage, ignore_errors=True)
    sandbox.upper.mkdir(parents=True)
    sandbox.work.mkdir(parents=True)
    return sandbox


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _move_tree(src: Path, dst: Path) -> None:
    """Move src onto dst; a directory that already exists at dst is merged file by file."""
    if dst.is_dir() and not dst.is_symlink() and src.is_dir():
        for child in src.iterdir():
            _move_tree(child, dst / child.name)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst) if _same_device(src, dst.parent) else shutil.move(str(src), str(dst))


def _same_device(a: Path, b: Path) -> bool:
    return os.lstat(a).st_dev == os.stat(b).st_dev


def commit_outputs(sandbox: Sandbox, workdir: Path, outputs: Sequence[OutputSpec]) -> list[str]:
    """Move declared outputs from the upper layer into workdir; return the discarded writes."""
    for out in outputs:
        staged = sandbox.upper / out.path
        try:
            st = os.lstat(staged)
        except FileNotFoundError:
            continue
        if _is_whiteout(st):
            continue
        _move_tree(staged, workdir / out.path)
    discarded: list[str] = []
    for root, dirs, files in os.walk(sandbox.upper):
        for name in files:
            full = Path(root) / name
            rel = full.relative_to(sandbox.upper).as_posix()
            kind = "deleted" if _is_whiteout(os.lstat(full)) else "wrote"
            discarded.append(f"{kind} {rel}")
        dirs.sort()
    shutil.rmtree(sandbox.stage, ignore_errors=True)
    return sorted(discarded)
