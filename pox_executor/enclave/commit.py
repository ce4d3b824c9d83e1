"""Committing a sandboxed job's writes: declared outputs move to the host, the rest is discarded.

After the job, each declared output (outputs, logs, benchmarks) is moved from where the sandbox
staged it (the working directory's overlay, the overlay of an output directory outside it, the
private /tmp or $HOME) to its real place. What is kept beside them:

- the whole tree of a `directory()` output;
- the target of a symlink output when the job wrote that target inside the working directory
  (Snakemake's `ln -s dir_to_link_to symlinked_dir`): the output's digest covers it, so its own
  symlinks are checked as those of a directory output.

Refused (the job fails and the output is not committed): a symlink output, or a symlink inside
a directory output, whose target leaves the working directory or points into `.pox/`, unless the
target is another output of the same job; an output below a directory the job replaced by a
symlink (following it would move host files). Everything else the job wrote or deleted is discarded
and reported (`wrote x`, `deleted x`); the private /tmp and $HOME are scratch, dropped silently.

A move within one file system is a rename; across file systems a file is copied beside its
destination and renamed into place, so a crash never leaves a half-written output.

The stage itself (what was discarded) is removed on one background thread, off the job's
path (2 ms per job alone, 4-9 ms under load), in batches by `rm -rf` so that the removal never
holds the interpreter lock: by then nothing in it is the job's result. The thread is joined
before the process exits, and `wait_for_discarded_stages` waits for it at the end of a run.

A stage the job left clean is kept for the next job instead (`commit_job_outputs(...,
keep_clean=True)`, `take_spare_stage`): making and removing a stage's folders cost about 2 ms
of CPU per job (inode allocation on the working directory's file system). Clean means: no
writable root or home in it, nothing but folders in its upper layer and private /tmp (the
copied-up parents of the committed outputs, the mount points bubblewrap made), only the
kernel's own entries in the overlay's work folder, an empty mount point, the same owner and
mode as when it was made, and no extended attribute a job could have set. Those folders are
removed and the stage is renamed aside as `.spare-<pid>-<id>`; the next job renames it to its
own path. Anything else, and every stage once the run ends, is discarded as above; spares of a
process that no longer runs are removed by the next run like discarded stages.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pox_executor.enclave.isolation import (
    PRIVATE_TMP,
    Sandbox,
    host_location,
    is_within,
    job_home,
)
from pox_executor.enclave.runtime import OutputSpec
from pox_executor.enclave.warm import close_all as close_warm_sandboxes


@dataclass(frozen=True)
class CommitResult:
    """What became of a job's writes."""

    discarded: tuple[str, ...]  # `wrote x` / `deleted x`, sorted
    rejected: tuple[str, ...]  # one message per output that was refused, naming it


def commit_job_outputs(
    sandbox: Sandbox, workdir: Path, outputs: Sequence[OutputSpec], *, keep_clean: bool = False
) -> CommitResult:
    """Move the declared outputs to their places; report what was discarded or refused.
    `keep_clean`: keep the stage for another job when the job left it clean (docstring)."""
    real_workdir = os.path.realpath(workdir)
    destinations = [host_location(workdir, o.path) for o in outputs]
    rejected: list[str] = []
    for out, destination in zip(outputs, destinations, strict=True):
        staged = _staged(sandbox, real_workdir, destination)
        if staged is None or _missing(staged):
            continue
        if os.path.realpath(staged.parent) != os.path.normpath(staged.parent):
            # The job made a directory on the way a symlink: following it would move host files.
            rejected.append(f"output {out.path!r} was not committed: its directory is a symlink")
            continue
        target = _written_link_target(sandbox, staged, destination, real_workdir)
        problem = _escaping_link(staged, destination, real_workdir, destinations)
        if not problem and target is not None:
            problem = _escaping_link(target[0], target[1], real_workdir, destinations)
        if problem:
            rejected.append(f"output {out.path!r} was not committed: {problem}")
            continue
        if target is not None:
            _move_tree(target[0], Path(target[1]))
        _move_tree(staged, Path(destination))
    discarded = _leftovers(sandbox)
    if not (keep_clean and not discarded and _SPARES.keep(sandbox)):
        discard_stage(sandbox.stage)
    return CommitResult(discarded=tuple(sorted(discarded)), rejected=tuple(rejected))


class _StageRemover:
    """Removes discarded stages in batches with `rm -rf`, on one thread started when there is
    work: removing a stage file by file in Python held the interpreter lock that Snakemake's
    scheduler needs, and under a busy run a backlog of stages then delayed the run's end. The
    thread gathers stages for up to `_LINGER` seconds before each `rm` (jobs finish one at a
    time; one `rm` per stage cost a process start per job), and at once when someone waits for
    the removal. It is not a daemon: the interpreter waits for it at exit, so a finished run
    leaves no stage behind."""

    _BATCH = 128  # stages per `rm` (its argv stays far below the kernel's limit)
    _LINGER = 0.5

    def __init__(self) -> None:
        self._queue: list[Path] = []
        self._busy = False
        self._waiters = 0
        self._changed = threading.Condition()

    def discard(self, stage: Path) -> None:
        with self._changed:
            self._queue.append(stage)
            if len(self._queue) >= self._BATCH:
                self._changed.notify_all()
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._work, name="pox-stage-removal").start()

    def _work(self) -> None:
        while True:
            with self._changed:
                if not self._queue:
                    self._busy = False
                    self._changed.notify_all()
                    return
                self._changed.wait_for(
                    lambda: self._waiters > 0 or len(self._queue) >= self._BATCH, self._LINGER
                )
                batch, self._queue = self._queue[: self._BATCH], self._queue[self._BATCH :]
            _remove_trees(batch)

    def wait(self) -> None:
        with self._changed:
            self._waiters += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: not self._busy)
            finally:
                self._waiters -= 1


def _remove_trees(paths: Sequence[Path]) -> None:
    """Remove `paths` with one `rm -rf` (never crossing into another file system); in Python
    where `rm` cannot be started."""
    try:
        subprocess.run(
            [shutil.which("rm") or "rm", "-rf", "--one-file-system", "--", *map(str, paths)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)


_REMOVER = _StageRemover()


class _SpareStages:
    """Clean stages kept for the next jobs, per stage folder (module docstring)."""

    _LIMIT = 8  # per stage folder: a few more than the jobs that finish at once
    _KERNEL_WORK = frozenset({"work", "incompat", "index"})  # what overlayfs makes in workdir=
    _SYSTEM_XATTRS = ("trusted.overlay.", "security.selinux")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spares: dict[Path, list[Path]] = {}

    def take(self, stage_root: Path) -> Path | None:
        with self._lock:
            spares = self._spares.get(stage_root)
            return spares.pop() if spares else None

    def keep(self, sandbox: Sandbox) -> bool:
        """Clean `sandbox` for reuse and keep it; False (nothing kept) when it is not clean."""
        with self._lock:
            if len(self._spares.get(sandbox.stage.parent, ())) >= self._LIMIT:
                return False
        try:
            if not self._clean(sandbox):
                return False
            spare = sandbox.stage.with_name(f".spare-{os.getpid()}-{uuid.uuid4().hex[:12]}")
            os.rename(sandbox.stage, spare)
        except OSError:
            return False
        with self._lock:
            self._spares.setdefault(spare.parent, []).append(spare)
        return True

    def release(self) -> None:
        """Hand every spare to the background removal (the run ends)."""
        with self._lock:
            spares = [s for group in self._spares.values() for s in group]
            self._spares.clear()
        for spare in spares:
            _REMOVER.discard(spare)

    def _clean(self, sandbox: Sandbox) -> bool:
        if sandbox.roots or sandbox.home is not None or sandbox.home_on_disk:
            return False
        stage = os.stat(sandbox.stage)
        layers = (sandbox.upper, sandbox.tmp, sandbox.work, sandbox.merged)
        if sorted(os.listdir(sandbox.stage)) != sorted(p.name for p in layers):
            return False
        for layer in layers:
            st = os.lstat(layer)
            if (st.st_mode, st.st_uid, st.st_gid, st.st_dev) != (
                stage.st_mode,
                stage.st_uid,
                stage.st_gid,
                stage.st_dev,
            ):
                return False  # changed by the job, or still a mount point
            if any(not x.startswith(self._SYSTEM_XATTRS) for x in os.listxattr(layer)):
                return False
        if os.listdir(sandbox.merged):
            return False
        kernel = os.listdir(sandbox.work)
        if not set(kernel) <= self._KERNEL_WORK:
            return False
        folders = _only_folders(sandbox.upper) + _only_folders(sandbox.tmp)
        if any(f is None for f in folders):
            return False
        for entry in kernel:  # the volatile mount's marker must go before the next mount
            _remove_kernel_entry(sandbox.work / entry)
        for folder in folders:  # deepest first
            assert folder is not None
            os.rmdir(folder)
        return True


def _remove_kernel_entry(path: Path) -> None:
    """Remove what overlayfs left in its work folder. A volatile mount leaves
    `work/incompat/volatile/dirty` and refuses to mount again while it is there; the `work`
    folder itself the kernel empties and makes again at each mount, so it stays."""
    volatile = path / "incompat" / "volatile"
    if path.name == "work" and sorted(os.listdir(path)) in ([], ["incompat"]):
        if os.path.isdir(volatile) and os.listdir(volatile) == ["dirty"]:
            os.unlink(volatile / "dirty")
            os.rmdir(volatile)
            os.rmdir(volatile.parent)
            return
        if not os.listdir(path):
            return
    shutil.rmtree(path)


def _only_folders(top: Path, limit: int = 64) -> list[Path | None]:
    """The folders below `top`, deepest first; a None among them when anything else is there
    (a file, a link, a whiteout, an extended attribute) or there are more than `limit`."""
    found: list[Path | None] = []
    for root, dirs, files in os.walk(top, topdown=False):
        if files:
            return [None]
        for name in dirs:
            path = Path(root) / name
            if not stat.S_ISDIR(os.lstat(path).st_mode) or any(
                not x.startswith(_SpareStages._SYSTEM_XATTRS)
                for x in os.listxattr(path, follow_symlinks=False)
            ):
                return [None]
            found.append(path)
        if len(found) > limit:
            return [None]
    return found


_SPARES = _SpareStages()


def take_spare_stage(stage_root: Path) -> Path | None:
    """A clean stage another job of this process left in `stage_root`, or None."""
    return _SPARES.take(stage_root)


def discard_stage(stage: Path) -> None:
    """Remove a committed (or never used) stage on the background thread. It is first renamed
    aside (one rename, synchronous), so its path is free again at once: a new stage made there
    (a second probe, a retried job) never races the removal."""
    aside = stage.with_name(f".discarded-{stage.name}-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(stage, aside)
    except FileNotFoundError:
        return
    except OSError:
        aside = stage  # removed where it is
    _REMOVER.discard(aside)


def discard_leftover_stages(stage_root: Path) -> None:
    """Remove what an interrupted run left renamed aside in `stage_root` (a run killed while its
    background removal was behind); live stages of runs sharing the folder are not touched."""
    try:
        leftovers = [
            e for e in stage_root.iterdir() if e.name.startswith(".discarded-") or _dead_spare(e)
        ]
    except OSError:
        return
    for leftover in leftovers:
        _REMOVER.discard(leftover)


def _dead_spare(entry: Path) -> bool:
    """A spare or warm stage (`.spare-<pid>-<id>`, `.warm-<pid>-<id>`) of a process that no
    longer runs."""
    parts = entry.name.split("-")
    if len(parts) != 3 or parts[0] not in (".spare", ".warm") or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def wait_for_discarded_stages() -> None:
    """End the idle warm sandboxes (warm.py) and discard the spare stages, then return once
    every stage handed to `discard_stage` so far is removed."""
    close_warm_sandboxes()
    _SPARES.release()
    _REMOVER.wait()


def _staged(sandbox: Sandbox, real_workdir: str, destination: str) -> Path | None:
    if is_within(destination, real_workdir):
        return sandbox.upper / os.path.relpath(destination, real_workdir)
    for root in sorted(sandbox.roots, key=lambda r: -len(r.path)):
        if is_within(destination, root.path):
            return root.upper / os.path.relpath(destination, root.path)
    privates = [(PRIVATE_TMP, sandbox.tmp)]
    if sandbox.home is not None or sandbox.home_on_disk:
        privates.append((job_home(), sandbox.home_source))
    for private, source in sorted(privates, key=lambda p: -len(p[0])):  # innermost first
        if is_within(destination, private):
            return source / os.path.relpath(destination, private)
    return None


def _missing(staged: Path) -> bool:
    try:
        st = os.lstat(staged)
    except FileNotFoundError:
        return True
    return _is_whiteout(st)


def _escaping_link(
    staged: Path, destination: str, real_workdir: str, outputs: Sequence[str]
) -> str:
    """Why a symlink at (or inside) this output leaves the job's reach, or '' when none does."""
    links: list[tuple[Path, str]] = []
    if staged.is_symlink():
        links.append((staged, destination))
    elif staged.is_dir():
        for root, dirs, files in os.walk(staged):
            for name in (*dirs, *files):
                entry = Path(root) / name
                if entry.is_symlink():
                    links.append((entry, os.path.join(destination, entry.relative_to(staged))))
    for entry, final in links:
        target = os.readlink(entry)
        resolved = os.path.normpath(os.path.join(os.path.dirname(final), target))
        real = os.path.realpath(resolved)
        pox_dir = os.path.join(real_workdir, ".pox")
        for candidate in {resolved, real}:
            inside = is_within(candidate, real_workdir) and not is_within(candidate, pox_dir)
            if not inside and not any(is_within(candidate, o) for o in outputs):
                where = "" if final == destination else f" ({final})"
                return f"symlink{where} points to {target!r}, outside the working directory"
    return ""


def _written_link_target(
    sandbox: Sandbox, staged: Path, destination: str, real_workdir: str
) -> tuple[Path, str] | None:
    """For a symlink output: where the job staged the target it wrote in the working
    directory, and the target's place; None when it is not a symlink or wrote no target."""
    if not staged.is_symlink():
        return None
    target = os.path.normpath(os.path.join(os.path.dirname(destination), os.readlink(staged)))
    if not is_within(target, real_workdir) or target == real_workdir:
        return None
    written = sandbox.upper / os.path.relpath(target, real_workdir)
    if _missing(written) or written.is_symlink():
        return None
    if os.path.realpath(written.parent) != os.path.normpath(written.parent):
        return None
    return written, target


def _leftovers(sandbox: Sandbox) -> list[str]:
    out: list[str] = []
    uppers = [(sandbox.upper, "")] + [(r.upper, r.path) for r in sandbox.roots]
    for upper, prefix in uppers:
        for root, dirs, files in os.walk(upper):
            dirs.sort()
            for name in files:
                full = Path(root) / name
                rel = full.relative_to(upper).as_posix()
                shown = f"{prefix}/{rel}" if prefix else rel
                kind = "deleted" if _is_whiteout(os.lstat(full)) else "wrote"
                out.append(f"{kind} {shown}")
    return out


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _move_tree(src: Path, dst: Path) -> None:
    """Move src onto dst; a directory that already exists at dst is merged file by file."""
    if dst.is_dir() and not dst.is_symlink() and src.is_dir() and not src.is_symlink():
        for child in src.iterdir():
            if not _is_whiteout(os.lstat(child)):
                _move_tree(child, dst / child.name)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    if os.lstat(src).st_dev == os.stat(dst.parent).st_dev:
        os.replace(src, dst)
    elif src.is_dir() and not src.is_symlink():
        dst.mkdir()
        for child in src.iterdir():
            _move_tree(child, dst / child.name)
    else:
        # Another file system: copy beside the destination, then rename into place.
        partial = dst.with_name(f".{dst.name}.pox-partial")
        if src.is_symlink():
            os.symlink(os.readlink(src), partial)
        else:
            shutil.copy2(src, partial)
        os.replace(partial, dst)
        os.unlink(src)
