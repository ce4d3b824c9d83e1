"""The `sim` backend: bubblewrap isolation plus honest simulated evidence.

Isolation is real (see `isolation`); the evidence is not hardware evidence: a platform key made
fresh for this run signs a `sim-report` whose debug flag is always set, and strict verification
rejects it. Where bubblewrap cannot run, the backend says so once and every statement records that
the job ran without isolation.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.enclave.environment import host_environment
from pox_executor.enclave.evidence import Evidence, produce_sim_evidence
from pox_executor.enclave.isolation import (
    bubblewrap_version,
    commit_outputs,
    create_sandbox,
    interpreter_paths,
    sandbox_argv,
)
from pox_executor.enclave.jobprocess import (
    RunningJobs,
    kill_process_group,
    measurement_of_document,
    stage_root_for,
    start_process,
    summarize_discarded,
    wait_process,
)
from pox_executor.enclave.runtime import JobSpec, RunOutcome
from pox_executor.primitives import utc_now


class SimRuntime:
    """Default backend. `isolate=False` runs jobs directly (recorded as not isolated)."""

    name = "sim"

    def __init__(self, *, isolate: bool = True, stage_root: Path | None = None) -> None:
        self._want_isolation = isolate
        self._isolated = False
        self._why_not = "isolation disabled by setting"
        self._platform_key = Ed25519PrivateKey.generate()
        self._stage_root = stage_root
        self._jobs = RunningJobs()

    # -- preparation -------------------------------------------------------------------------

    def prepare(self, workdir: Path) -> None:
        self._workdir = workdir
        self._stage_root = stage_root_for(workdir, self._stage_root)
        if not self._want_isolation:
            return
        version = bubblewrap_version()
        if version is None:
            self._why_not = "bubblewrap (bwrap) is not installed"
        else:
            self._why_not = self._probe(workdir)
        self._isolated = not self._why_not

    def _probe(self, workdir: Path) -> str:
        assert self._stage_root is not None
        sandbox = create_sandbox(self._stage_root / "probe")
        try:
            argv = sandbox_argv(
                "echo probe > .pox-probe",
                workdir=workdir,
                sandbox=sandbox,
                network=False,
                hidden=self._hidden(workdir),
                visible=interpreter_paths(),
            )
        except ValueError as exc:
            commit_outputs(sandbox, workdir, [])
            return str(exc)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"sandbox probe failed to start: {exc}"
        staged = (sandbox.upper / ".pox-probe").exists()
        commit_outputs(sandbox, workdir, [])
        if result.returncode != 0 or not staged:
            return f"sandbox probe failed: {result.stderr.strip()[:300] or 'no output'}"
        return ""

    def _hidden(self, workdir: Path) -> list[Path]:
        return [workdir / ".pox"] if (workdir / ".pox").is_dir() else []

    # -- identity ----------------------------------------------------------------------------

    @property
    def isolated(self) -> bool:
        return self._isolated

    def describe_isolation(self) -> str:
        if self._isolated:
            return f"{bubblewrap_version()} + private overlay of the working directory"
        return f"none: {self._why_not}"

    def image_digest(self) -> str:
        return host_environment().digest()

    def measurement(self) -> str:
        document = {
            "backend": self.name,
            "isolation": self.describe_isolation(),
            "image": self.image_digest(),
        }
        return measurement_of_document(document)

    def builder_id(self) -> str:
        return f"https://pox.dev/backends/sim@sha256:{self.measurement()}"

    def evidence(self, report_data: bytes, *, measurement: str | None = None) -> Evidence:
        return produce_sim_evidence(
            self._platform_key,
            measurement=measurement or self.measurement(),
            report_data=report_data,
            issued_at=utc_now(),
        )

    # -- running -----------------------------------------------------------------------------

    def run(self, spec: JobSpec, cancelled: threading.Event) -> RunOutcome:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        sandbox = None
        if self._isolated:
            assert self._stage_root is not None
            sandbox = create_sandbox(self._stage_root / spec.invocation_id)
            argv = sandbox_argv(
                spec.command,
                workdir=spec.workdir,
                sandbox=sandbox,
                network=spec.network,
                hidden=self._hidden(spec.workdir),
                visible=interpreter_paths(),
            )
        else:
            argv = ["sh", "-c", spec.command]
        env = {**os.environ, **spec.env}
        started = utc_now()
        with open(spec.log_path, "ab") as log_file:
            process = start_process(
                argv,
                cwd=spec.workdir,
                env=env,
                log_file=log_file,
                invocation_id=spec.invocation_id,
            )
            stop = functools.partial(kill_process_group, process)
            with self._jobs.running(spec.invocation_id, stop):
                code = wait_process(process, cancelled, stop)
        finished = utc_now()
        discarded: list[str] = []
        if sandbox is not None:
            discarded = commit_outputs(sandbox, spec.workdir, spec.outputs)
        return RunOutcome(
            exit_code=code,
            started_on=started,
            finished_on=finished,
            isolated=self._isolated,
            isolation=self.describe_isolation(),
            discarded_writes=summarize_discarded(discarded),
        )

    def cancel_all(self) -> None:
        self._jobs.stop_all()
