"""The enclave runtime interface every backend implements (sim now; docker, SGX, TDX/SNP later).

A runtime prepares once per run, runs one job isolated, says what it measured (the identity a
verifier compares against reference values), and produces TEE evidence over 64 bytes of report
data. Backends own isolation and evidence; they never build statements or touch the run log.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pox_executor.enclave.evidence import Evidence


@dataclass(frozen=True)
class OutputSpec:
    """A location the job may write: a declared output, log or benchmark file."""

    path: str
    is_directory: bool = False


@dataclass(frozen=True)
class JobSpec:
    """Everything a runtime needs to run one job attempt; paths are relative to `workdir`."""

    invocation_id: str
    command: str
    workdir: Path
    outputs: tuple[OutputSpec, ...]
    log_path: Path
    network: bool = False
    threads: int = 1
    mem_mb: int | None = None
    container: str | None = None  # the rule's `container:` image, for container backends
    env: Mapping[str, str] = field(default_factory=dict)
    # Names of host environment variables the rule declared with `envvars:`: passed to the job
    # even when they look like secrets (every other secret-looking variable is dropped).
    env_passthrough: tuple[str, ...] = ()
    # Absolute paths outside the working directory the job must be able to read (workflow
    # sources, declared inputs, scripts): made visible read-only by isolating backends.
    readable: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """What happened when a runtime ran a job."""

    exit_code: int
    started_on: str
    finished_on: str
    isolated: bool
    isolation: str
    discarded_writes: tuple[str, ...] = ()
    # The identity of what ran this attempt (a container backend picks the image per job), so the
    # recorder never asks the runtime after the fact: `sha256:<hex>` image digest, hex measurement
    # and SLSA builder id. None means the runtime's run-wide identity.
    image_digest: str | None = None
    measurement: str | None = None
    builder_id: str | None = None
    # Names (never values) of the host environment variables the job received.
    environment_names: tuple[str, ...] = ()


class EnclaveRuntime(Protocol):
    """One execution backend. `prepare` is called once before the first job."""

    name: str

    def prepare(self, workdir: Path) -> None: ...

    @property
    def isolated(self) -> bool: ...

    def describe_isolation(self) -> str: ...

    def measurement(self) -> str:
        """Hex SHA-256 identifying what runs the job (image, runtime), for reference values."""
        ...

    def image_digest(self) -> str:
        """`sha256:<hex>` of the environment image the job sees."""
        ...

    def run(self, spec: JobSpec, cancelled: threading.Event) -> RunOutcome: ...

    def evidence(self, report_data: bytes) -> Evidence: ...

    def builder_id(self) -> str:
        """SLSA `builder.id`: backend plus measurement."""
        ...

    def cancel_all(self) -> None:
        """Stop every job this runtime is running (Snakemake cancelled the workflow)."""
        ...


def wait_cancellable(
    process: subprocess.Popen[bytes], cancelled: threading.Event, on_cancel: Callable[[], None]
) -> int:
    """Wait for a job's process; the first time `cancelled` is set, call `on_cancel` (kill it)."""
    called = False
    exited = _ExitNotifier(process)
    try:
        while not exited(0.2):
            if cancelled.is_set() and not called:
                called = True
                on_cancel()
        return process.wait()
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
