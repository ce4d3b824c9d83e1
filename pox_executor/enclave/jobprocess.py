"""What every backend that runs jobs shares, written once.

- where job stages live (`stage_root_for`: `.pox/stage` of the working directory by default);
- the jobs a runtime is running, each with how to stop it (`RunningJobs`, behind `cancel_all`);
- starting a job's process with its output going to the job log, and stopping its whole
  process group (`start_process`, `kill_process_group`);
- waiting for a job (process or container) while honouring the run's cancellation
  (`wait_cancellable`);
- the report of discarded writes, with Snakemake's own scratch (`.snakemake/`) folded into one
  line (`summarize_discarded`);
- a measurement computed over a document that names what runs jobs (`measurement_of_document`:
  SHA-256 of its RFC 8785 canonical JSON).

Backends own isolation and identity; this module holds no policy of its own.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import rfc8785

from pox_executor.errors import EnclaveError

NOISE_PREFIXES = (".snakemake/",)
WAIT_POLL_S = 0.2


def stage_root_for(workdir: Path, configured: Path | None) -> Path:
    """The folder holding one stage per job: `configured`, else `<workdir>/.pox/stage`."""
    return configured if configured is not None else workdir / ".pox" / "stage"


class RunningJobs:
    """The jobs a runtime is running, by invocation id, each with the call that stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: dict[str, Callable[[], None]] = {}

    @contextmanager
    def running(self, invocation_id: str, stop: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            self._stops[invocation_id] = stop
        try:
            yield
        finally:
            with self._lock:
                self._stops.pop(invocation_id, None)

    def stop_all(self) -> None:
        with self._lock:
            stops = list(self._stops.values())
        for stop in stops:
            stop()


def start_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_file: BinaryIO,
    invocation_id: str,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start a job's process in a new session (its own process group), output into the log;
    `stdin`: /dev/null, or a descriptor the process reads (a warm sandbox's start pipe)."""
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            start_new_session=True,
        )
    except OSError as exc:
        raise EnclaveError(f"could not start job {invocation_id}: {exc}") from exc


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the job's whole process group (the sandbox and everything it started)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def wait_cancellable(
    wait_once: Callable[[float], int | None],
    cancelled: threading.Event,
    on_cancel: Callable[[], None],
    poll_s: float = WAIT_POLL_S,
) -> int:
    """Wait for a job's exit code; the first time `cancelled` is set, call `on_cancel` (stop it).

    `wait_once(timeout_s)` returns the exit code, or None while the job still runs.
    """
    called = False
    while True:
        code = wait_once(poll_s)
        if code is not None:
            return code
        if cancelled.is_set() and not called:
            called = True
            on_cancel()


def wait_process(
    process: subprocess.Popen[bytes], cancelled: threading.Event, on_cancel: Callable[[], None]
) -> int:
    """`wait_cancellable` for a local process; its exit is seen at once through a pidfd."""
    exited = _ExitNotifier(process)
    try:
        return wait_cancellable(
            lambda timeout_s: process.wait() if exited(timeout_s) else None, cancelled, on_cancel
        )
    finally:
        exited.close()


class _ExitNotifier:
    """`notifier(timeout_s)`: True once the process has exited, seen at once through a pidfd.

    Popen.wait with a timeout polls with sleeps of up to 50 ms, a delay every short job paid.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        try:
            self._pidfd: int | None = os.pidfd_open(process.pid)
        except OSError:  # a kernel without pidfds (< 5.3), or the process is gone already
            self._pidfd = None

    def __call__(self, timeout_s: float) -> bool:
        if self._pidfd is None:
            try:
                self._process.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        return bool(select.select([self._pidfd], [], [], timeout_s)[0])

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def note_in_job_log(log_path: Path, *lines: str) -> None:
    """Append PoX's own lines to the job log (what the user reads when the job fails)."""
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def summarize_discarded(discarded: Sequence[str]) -> tuple[str, ...]:
    """The discarded writes worth reporting one by one, plus one line for Snakemake's scratch."""
    kept: list[str] = []
    noise = 0
    for line in discarded:  # "wrote <path>" or "deleted <path>"
        if line.split(" ", 1)[1].startswith(NOISE_PREFIXES):
            noise += 1
        else:
            kept.append(line)
    if noise:
        kept.append(f"{noise} writes under .snakemake/ (Snakemake's own scratch)")
    return tuple(kept)


def measurement_of_document(document: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the RFC 8785 canonical JSON of `document`."""
    return hashlib.sha256(rfc8785.dumps(dict(document))).hexdigest()
