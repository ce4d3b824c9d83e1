"""Warm sandboxes of the sim backend: the next job's sandbox, started before the job is known.

Starting a sandbox costs a job 10-15 ms on the 2-core reference machine before its command runs
(the stage, the overlay mount, bubblewrap's namespaces and mounts, and bubblewrap's own start:
each program start costs ~1.3 ms there), and Snakemake's scheduler waits for jobs: while both
cores are busy it re-evaluates on a 1 s timer per earlier round, so every millisecond on a job's
path from submission to report costs the run more than a millisecond.

A warm sandbox is that sandbox started ahead with `sh -c '. /dev/stdin'` waiting in it: `sh`
reads its start script from a pipe only PoX holds. When a job arrives PoX writes
`exec </dev/null` and `exec <the job's argv>` (or `exec sh -c <command>`) and closes the pipe,
so the job's process is what a cold start makes of it: the program, exec'd by `sh`, stdin
/dev/null, no extra descriptor. An unused warm sandbox is ended by closing the pipe with nothing
written: `sh` sources an empty script and exits.

A warm sandbox serves a job only when the job's view is exactly the warm one's (the runtime's
key, `sim._View`): no network, no output outside the working directory or directly in a private
home (those need overlays or a home of their own), and the same readable paths and environment.
Any other job starts cold, as before. Its log is written in its stage (hidden from jobs) and
renamed onto the job's log. `WarmSandboxes` keeps up to `limit` per view (rules in its
docstring), each on a daemon thread that starts bubblewrap and waits until the sandbox's process
was waited for: the thread holds the sandbox's mount namespace, and bubblewrap's
`--die-with-parent` follows the thread that started it. A new one is started each time one is
taken, so the next job finds one.
`close_all()` ends the idle ones (`commit.wait_for_discarded_stages` calls it at the end of a
run); a warm stage is named `.warm-<pid>-<id>`, and a later run removes those of a dead process
(`commit.discard_leftover_stages`).
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import subprocess
import threading
import uuid
import weakref
from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from pox_executor.enclave.isolation import Sandbox, SandboxLaunch

PREFIX = ".warm-"


@lru_cache(maxsize=1)
def waiter() -> tuple[str, ...]:
    """The program a warm sandbox waits in: `sh` sourcing its start script from stdin."""
    return (shutil.which("sh") or "sh", "-c", ". /dev/stdin", "sh")  # `$0` as with `sh -c`


def start_script(argv: Sequence[str]) -> bytes:
    """What a warm sandbox's `sh` sources to become the job: stdin back to /dev/null, then
    `exec` of exactly `argv`."""
    return f"exec </dev/null\nexec {shlex.join(argv)}\n".encode()


def warm_name() -> str:
    """A warm stage's (and its temporary log's) name: `.warm-<pid>-<id>`."""
    return f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"


# `spawn(argv, stdin, log)`: start the sandbox's process reading `stdin`, output into `log`.
Spawn = Callable[[list[str], int, BinaryIO], "subprocess.Popen[bytes]"]
# `prepare()` on the warm thread: the stage and how to start the sandbox in it.
Prepare = Callable[[], tuple[Sandbox, SandboxLaunch]]


class WarmSandbox:
    """One sandbox started ahead; `start` hands it a job, `end` lets its thread go."""

    def __init__(self, key: Hashable, log_path: Path) -> None:
        self.key = key
        self.log_path = log_path  # a temporary name in the log folder until a job takes it
        self.sandbox: Sandbox | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.failure: BaseException | None = None
        self._pipe = -1
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, prepare: Prepare, spawn: Spawn, *, in_process: bool) -> None:
        """Make and start the sandbox on a daemon thread, which then holds its namespace until
        `end` (isolation.SandboxLaunch.start)."""

        def body(argv: list[str]) -> None:
            read_end, self._pipe = os.pipe()
            try:
                with open(self.log_path, "ab") as log:
                    self.process = spawn(argv, read_end, log)
            finally:
                os.close(read_end)
                self._ready.set()
            self._ended.wait()

        def thread() -> None:
            try:
                self.sandbox, launch = prepare()
                launch.start(body, in_process=in_process)
            except BaseException as exc:  # the sandbox is then never handed out
                self.failure = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=thread, name="pox-warm-sandbox", daemon=True)
        self._thread.start()

    def usable(self) -> bool:
        """Started and still waiting for its job (never blocks)."""
        return (
            self._ready.is_set()
            and self.failure is None
            and self._pipe >= 0
            and self.process is not None
            and self.process.poll() is None
        )

    def failed(self) -> bool:
        """It could not be started, or its process ended without a job."""
        if not self._ready.is_set():
            return False
        return self.failure is not None or self.process is None or self.process.poll() is not None

    def start(self, script: bytes) -> None:
        """Hand the sandbox its job: write the start script and close the pipe."""
        try:
            view = memoryview(script)
            while view:
                view = view[os.write(self._pipe, view) :]
        finally:
            self._close_pipe()

    def end(self) -> None:
        """Let the thread holding the namespace go; call once the process was waited for."""
        self._ended.set()
        if self._thread is not None:
            self._thread.join()

    def abandon(self) -> None:
        """End an unused warm sandbox: its `sh` reads an empty script and exits."""
        self._ready.wait()
        self._close_pipe()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.end()

    def _close_pipe(self) -> None:
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1


class WarmSandboxes:
    """Idle warm sandboxes of one runtime, by view. `make(key)` starts a new one (or returns
    None when the view cannot be warmed); `discard(warm)` removes an unused one's leftovers.

    A view is warmed from its second job on (a view seen once, such as a job reading a file no
    other job reads, would waste every sandbox made for it), up to `limit` sandboxes each for
    the two views used last. Warming stops for the run after three sandboxes that failed, or
    when eight more were ended unused than were used (views changing faster than they pay)."""

    _VIEWS = 2
    _MEMORY = 256  # views remembered for the "seen before" rule

    def __init__(
        self,
        make: Callable[[Hashable], WarmSandbox | None],
        discard: Callable[[WarmSandbox], None],
        *,
        limit: int = 2,
    ) -> None:
        self._make = make
        self._discard = discard
        self._limit = limit
        self._lock = threading.Lock()
        self._idle: list[WarmSandbox] = []
        self._seen: dict[Hashable, int] = {}  # by view, the most recently used last
        self._failures = 0
        self._used = 0
        self._wasted = 0
        _POOLS.add(self)

    def take(self, key: Hashable) -> WarmSandbox | None:
        """A started sandbox with view `key` if one is ready; replacements are started (each on
        its own thread, so this never waits for one) and idle ones of older views ended."""
        stale: list[WarmSandbox] = []
        found = None
        with self._lock:
            seen = self._seen.pop(key, 0) + 1
            self._seen[key] = seen
            if len(self._seen) > self._MEMORY:
                del self._seen[next(iter(self._seen))]
            keep: list[WarmSandbox] = []
            for warm in self._idle:
                if warm.key == key and warm.failed():
                    stale.append(warm)
                    self._failures += 1
                elif warm.key == key and found is None and warm.usable():
                    found = warm
                else:
                    keep.append(warm)  # still starting, one more ready, or another view's
            views = [k for k in reversed(self._seen) if k != key and any(w.key == k for w in keep)]
            allowed = {key, *views[: self._VIEWS - 1]}
            for warm in keep:
                if warm.key not in allowed:
                    stale.append(warm)
                    self._wasted += 1
            self._idle = [w for w in keep if w.key in allowed]
            self._used += found is not None
            if seen >= 2 and self._failures < 3 and self._wasted <= self._used + 8:
                for _ in range(self._limit - sum(w.key == key for w in self._idle)):
                    made = self._make(key)
                    if made is not None:
                        self._idle.append(made)
        for warm in stale:
            self._end(warm)
        return found

    def close(self) -> None:
        """End every idle sandbox (the run ends); a later `take` warms again."""
        with self._lock:
            idle, self._idle = self._idle, []
        for warm in idle:
            self._end(warm)

    def _end(self, warm: WarmSandbox) -> None:
        warm.abandon()
        self._discard(warm)


_POOLS: weakref.WeakSet[WarmSandboxes] = weakref.WeakSet()


def close_all() -> None:
    """End the idle warm sandboxes of every runtime of this process (the run ends)."""
    for pool in list(_POOLS):
        pool.close()


atexit.register(close_all)
