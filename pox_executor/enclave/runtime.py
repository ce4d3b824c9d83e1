"""The enclave runtime interface every backend implements (sim now; docker, SGX, TDX/SNP later).

A runtime prepares once per run, runs one job isolated, says what it measured (the identity a
verifier compares against reference values), and produces TEE evidence over 64 bytes of report
data. Backends own isolation and evidence; they never build statements or touch the run log.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Mapping, Sequence
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
    command: str  # a shell command line; what the job log and a dispatched node show
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
    # The program and arguments `command` starts, when it is one program's start
    # (`exec_command(argv)`): a backend execs them itself instead of `sh -c command`, one
    # shell's start less per job. Empty: `command` goes through `sh -c`.
    argv: tuple[str, ...] = ()

    def shell_argv(self) -> list[str]:
        """What to exec for this job: `argv`, else `sh -c command`."""
        return list(self.argv) if self.argv else ["sh", "-c", self.command]


def exec_command(argv: Sequence[str]) -> str:
    """The shell command line that starts exactly `argv` (the `command` of a JobSpec with it)."""
    return "exec " + shlex.join(argv)


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
    # Code the runtime itself put in the job's reach (the docker backend's dataset client):
    # (name, hex SHA-256) pairs the statement lists among the job's code.
    extra_code: tuple[tuple[str, str], ...] = ()


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

    def evidence(self, report_data: bytes, *, measurement: str | None = None) -> Evidence:
        """TEE evidence over 64 bytes of report data, for the identity that ran.

        `measurement` is an attempt's `RunOutcome.measurement` (what that job ran in); None means
        the runtime-wide identity, `measurement()`. A hardware backend cannot choose what it
        measured: it must refuse a measurement that is not its own.
        """
        ...

    def builder_id(self) -> str:
        """SLSA `builder.id`: backend plus measurement."""
        ...

    def cancel_all(self) -> None:
        """Stop every job this runtime is running (Snakemake cancelled the workflow)."""
        ...
