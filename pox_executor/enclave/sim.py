"""The `sim` backend: bubblewrap isolation plus honest simulated evidence.

Isolation is real: the view and the overlays are built by `isolation`, the writes kept or
discarded by `commit`, the environment filtered by `jobenv` (docs/isolation.md). The evidence is
not hardware evidence: a platform key made fresh for this run signs a `sim-report` whose debug
flag is always set, and strict verification rejects it. Where bubblewrap cannot run, the backend
says so once and every statement records that the job ran without isolation (its environment is
filtered all the same, and it still gets a private TMPDIR).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.enclave import mountns
from pox_executor.enclave.commit import (
    commit_job_outputs,
    discard_leftover_stages,
    discard_stage,
    take_spare_stage,
    wait_for_discarded_stages,
)
from pox_executor.enclave.environment import HostEnvironment, host_environment
from pox_executor.enclave.evidence import Evidence, produce_sim_evidence
from pox_executor.enclave.isolation import (
    HOST_DIRECTORY_VARIABLES,
    PRIVATE_TMP,
    Sandbox,
    SandboxError,
    SandboxLaunch,
    ViewMemo,
    bubblewrap_version,
    create_sandbox,
    interpreter_paths,
    job_home,
    output_places,
    path_prefixes,
    plan_outputs,
    sandbox_launch,
)
from pox_executor.enclave.jobenv import job_environment
from pox_executor.enclave.jobprocess import (
    RunningJobs,
    kill_process_group,
    measurement_of_document,
    note_in_job_log,
    stage_root_for,
    start_process,
    summarize_discarded,
    wait_process,
)
from pox_executor.enclave.runtime import JobSpec, RunOutcome
from pox_executor.enclave.warm import WarmSandbox, WarmSandboxes, start_script, waiter, warm_name
from pox_executor.primitives import utc_now

_POX_PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class _View:
    """What a warm sandbox fits (warm.py): jobs with the same working directory, environment and
    readable paths, no network and no output outside the working directory."""

    workdir: Path
    env: tuple[tuple[str, str], ...]
    visible: tuple[str, ...]


class SimRuntime:
    """Default backend. `isolate=False` runs jobs directly (recorded as not isolated).

    `shared_home=True` gives every job of the run one home directory (`.pox/home` of the working
    directory, kept between runs) instead of a fresh private one per job.
    """

    name = "sim"

    def __init__(
        self, *, isolate: bool = True, stage_root: Path | None = None, shared_home: bool = False
    ) -> None:
        self._want_isolation = isolate
        self._want_shared_home = shared_home
        self._shared_home: Path | None = None
        self._isolated = False
        self._why_not = "isolation disabled by setting"
        self._platform_key = Ed25519PrivateKey.generate()
        self._stage_root = stage_root
        self._jobs = RunningJobs()
        self._environment: Future[HostEnvironment] | None = None
        # Fixed once `prepare` decided on isolation: asked several times per job.
        self._identity: tuple[str, str, str] | None = None  # (isolation, image, measurement)
        self._view_memo = ViewMemo()
        self._in_process_mounts = False  # overlays mounted by `mountns`; decided by the probe
        self._warm: WarmSandboxes | None = None  # isolated runs: sandboxes started ahead

    # -- preparation -------------------------------------------------------------------------

    def prepare(self, workdir: Path) -> None:
        self._describe_environment_early()
        self._workdir = workdir
        self._view_memo = ViewMemo()
        self._stage_root = stage_root_for(workdir, self._stage_root)
        if self._want_shared_home:
            self._shared_home = workdir / ".pox" / "home"
        if not self._want_isolation:
            return
        version = bubblewrap_version()
        if version is None:
            self._why_not = "bubblewrap (bwrap) is not installed"
            return
        discard_leftover_stages(self._stage_root)
        self._why_not = self._probe(workdir)
        self._isolated = not self._why_not
        if self._isolated:
            self._warm = WarmSandboxes(self._make_warm, self._discard_warm)
        # Synchronous on purpose: a run with nothing to do may never shut the executor down,
        # and its working directory may be removed right after; nothing may outlive prepare.
        wait_for_discarded_stages()

    def _probe(self, workdir: Path) -> str:
        """Run one trivial job through the real sandbox; '' when it worked, else why not.

        As root the overlays are first mounted in-process (`mountns`); when that fails the
        `unshare` chain is tried, and the jobs of the run go the way that worked."""
        self._in_process_mounts = mountns.supported()
        why_not = self._probe_once(workdir)
        if why_not and self._in_process_mounts:
            self._in_process_mounts = False
            why_not = self._probe_once(workdir)
        return why_not

    def _probe_once(self, workdir: Path) -> str:
        assert self._stage_root is not None
        sandbox = create_sandbox(self._stage_root / "probe")
        try:
            launch = sandbox_launch(
                "echo probe > .pox-probe",
                workdir=workdir,
                sandbox=sandbox,
                network=False,
                visible=interpreter_paths(),
            )
        except SandboxError as exc:
            commit_job_outputs(sandbox, workdir, ())
            return str(exc)

        def probe(argv: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60)

        try:
            result = launch.start(probe, in_process=self._in_process_mounts)
        except (OSError, subprocess.TimeoutExpired) as exc:
            commit_job_outputs(sandbox, workdir, ())
            return f"sandbox probe failed to start: {exc}"
        staged = (sandbox.upper / ".pox-probe").exists()
        discard_stage(sandbox.stage)
        if result.returncode != 0 or not staged:
            return f"sandbox probe failed: {result.stderr.strip()[:300] or 'no output'}"
        return ""

    # -- identity ----------------------------------------------------------------------------

    @property
    def isolated(self) -> bool:
        return self._isolated

    def describe_isolation(self) -> str:
        if self._isolated:
            home = "one shared home" if self._shared_home else "private home per job"
            return (
                f"{bubblewrap_version()} + allowlisted read-only view, private overlay of the "
                f"working directory, {home}"
            )
        return f"none: {self._why_not}"

    def _describe_environment_early(self) -> None:
        """Start describing the host environment (0.4-1.3 s: every installed package's
        metadata) on a thread, so it overlaps the sandbox probe and the first job instead of
        delaying the first record. The description is the same `host_environment()`."""
        if self._environment is not None:
            return
        future: Future[HostEnvironment] = Future()

        def describe() -> None:
            try:
                future.set_result(host_environment())
            except BaseException as exc:  # handed to the first caller of image_digest
                future.set_exception(exc)

        self._environment = future
        threading.Thread(target=describe, name="pox-environment", daemon=True).start()

    def image_digest(self) -> str:
        return self._runtime_identity()[0]

    def measurement(self) -> str:
        return self._runtime_identity()[1]

    def _runtime_identity(self) -> tuple[str, str]:
        """The image digest and the measurement, computed once per isolation decision: each
        record asks for them several times."""
        isolation = self.describe_isolation()
        if self._identity is None or self._identity[0] != isolation:
            environment = self._environment.result() if self._environment else host_environment()
            image = environment.digest()
            document = {"backend": self.name, "isolation": isolation, "image": image}
            self._identity = (isolation, image, measurement_of_document(document))
        return self._identity[1], self._identity[2]

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
        assert self._stage_root is not None
        warm = self._run_warm(spec, cancelled)
        if warm is not None:
            return warm
        sandbox = create_sandbox(
            self._stage_root / spec.invocation_id,
            home=self._shared_home,
            spare=take_spare_stage(self._stage_root),
        )
        started = utc_now()
        try:
            launch, private = self._launch(spec, sandbox)
        except SandboxError as exc:
            note_in_job_log(spec.log_path, f"PoX: the job was not started: {exc}")
            commit_job_outputs(sandbox, spec.workdir, ())
            return self._outcome(spec, 126, started, (), ())
        env, passed = self._job_env(spec, private)
        with open(spec.log_path, "ab") as log_file:

            def start_and_wait(argv: list[str]) -> int:
                process = start_process(
                    argv,
                    cwd=spec.workdir,
                    env=env,
                    log_file=log_file,
                    invocation_id=spec.invocation_id,
                )
                stop = functools.partial(kill_process_group, process)
                with self._jobs.running(spec.invocation_id, stop):
                    return wait_process(process, cancelled, stop)

            if launch is None:
                code = start_and_wait(spec.shell_argv())
            else:
                try:  # in-process: the thread holding the namespace starts and waits
                    code = launch.start(start_and_wait, in_process=self._in_process_mounts)
                except mountns.MountNamespaceError as exc:
                    log_file.write(f"PoX: the sandbox could not be set up: {exc}\n".encode())
                    code = 125  # what the `unshare` chain exits with when a mount fails
        if not self._isolated:
            discard_stage(sandbox.stage)
            shutil.rmtree(_shared_memory_dir(spec), ignore_errors=True)  # plaintext, even if killed
            return self._outcome(spec, code, started, (), passed)
        return self._committed(spec, sandbox, code, started, passed)

    def _committed(
        self, spec: JobSpec, sandbox: Sandbox, code: int, started: str, passed: tuple[str, ...]
    ) -> RunOutcome:
        """Commit an isolated job's declared outputs; its outcome."""
        result = commit_job_outputs(sandbox, spec.workdir, spec.outputs, keep_clean=True)
        if result.rejected:
            note_in_job_log(spec.log_path, *(f"PoX: {r}" for r in result.rejected))
            code = code or 1
        return self._outcome(spec, code, started, summarize_discarded(result.discarded), passed)

    def _run_warm(self, spec: JobSpec, cancelled: threading.Event) -> RunOutcome | None:
        """Run the job in a warm sandbox (warm.py) when one with its view is ready; None: the
        job has a view of its own, or none was ready (the caller starts it cold)."""
        if self._warm is None or spec.network or spec.log_path.exists():
            return None  # (a warm sandbox's log is renamed onto the job's: never over one)
        try:
            roots, home_on_disk = output_places(
                spec.workdir, spec.outputs, shared_home=self._shared_home is not None
            )
        except SandboxError:
            return None  # the cold path says why in the job log
        if roots or home_on_disk:
            return None
        env, passed = self._job_env(spec, self._private_env())
        view = _View(
            workdir=spec.workdir,
            env=tuple(sorted(env.items())),
            visible=self._visible(spec),
        )
        warm = self._warm.take(view)
        if warm is None:
            return None
        assert warm.process is not None and warm.sandbox is not None
        try:
            os.rename(warm.log_path, spec.log_path)  # its log becomes the job's
        except OSError:
            warm.abandon()
            self._discard_warm(warm)
            return None
        started = utc_now()
        process = warm.process
        stop = functools.partial(kill_process_group, process)
        try:
            with self._jobs.running(spec.invocation_id, stop):
                try:
                    warm.start(start_script(spec.shell_argv()))
                except OSError as exc:  # its `sh` is gone: it reads no job
                    note_in_job_log(spec.log_path, f"PoX: the sandbox could not start: {exc}")
                    stop()
                code = wait_process(process, cancelled, stop)
        finally:
            warm.end()
        return self._committed(spec, warm.sandbox, code, started, passed)

    def _make_warm(self, key: Hashable) -> WarmSandbox | None:
        """Start a warm sandbox for `key` (a `_View`) on its own thread."""
        assert isinstance(key, _View) and self._stage_root is not None
        view, stage_root = key, self._stage_root
        name = warm_name()
        # Its log lives in its stage (hidden from jobs) until a job takes it; where the stage
        # root is on another file system than the job logs, the rename fails and jobs go cold.
        warm = WarmSandbox(view, stage_root / name / "job.log")

        def prepare() -> tuple[Sandbox, SandboxLaunch]:
            sandbox = create_sandbox(
                stage_root / name, home=self._shared_home, spare=take_spare_stage(stage_root)
            )
            launch = sandbox_launch(
                waiter(),
                workdir=view.workdir,
                sandbox=sandbox,
                network=False,
                visible=view.visible,
                memo=self._view_memo,
            )
            return sandbox, launch

        def spawn(argv: list[str], stdin: int, log: BinaryIO) -> subprocess.Popen[bytes]:
            env = dict(view.env)
            return start_process(
                argv, cwd=view.workdir, env=env, log_file=log, invocation_id=name, stdin=stdin
            )

        warm.run(prepare, spawn, in_process=self._in_process_mounts)
        return warm

    @staticmethod
    def _discard_warm(warm: WarmSandbox) -> None:
        """Remove an unused warm sandbox's stage (its empty log with it)."""
        if warm.sandbox is not None:
            discard_stage(warm.sandbox.stage)

    def _visible(self, spec: JobSpec) -> tuple[str, ...]:
        """The paths the job reads outside its working directory, made visible read-only."""
        search_path = os.environ.get("PATH", "")
        return tuple(
            str(p)
            for p in (
                *interpreter_paths(),
                *path_prefixes(search_path),
                *spec.readable,
                _POX_PACKAGE,  # `pox dataset open` in a job (editable installs live outside)
            )
        )

    def _job_env(
        self, spec: JobSpec, private: dict[str, str]
    ) -> tuple[dict[str, str], tuple[str, ...]]:
        """The job's variables (jobenv) with the runtime's `private` ones, and the names of the
        host variables it receives; an isolated job loses the host's per-user directories."""
        return job_environment(
            os.environ,
            passthrough=spec.env_passthrough,
            job=spec.env,
            sandbox=private,
            unset=HOST_DIRECTORY_VARIABLES if self._isolated else (),
        )

    def _private_env(self) -> dict[str, str]:
        """The variables an isolated sandbox sets: private TMPDIR and HOME, dataset access."""
        private = {"TMPDIR": PRIVATE_TMP, "TMP": PRIVATE_TMP, "TEMP": PRIVATE_TMP}
        return {**private, "HOME": job_home(), **self._dataset_env(isolated=True)}

    def _launch(
        self, spec: JobSpec, sandbox: Sandbox
    ) -> tuple[SandboxLaunch | None, dict[str, str]]:
        """How the job starts (None: `sh -c` without isolation) and the variables the sandbox
        sets (private TMPDIR and HOME)."""
        if not self._isolated:
            tmp = str(sandbox.tmp)
            unisolated = {"TMPDIR": tmp, "TMP": tmp, "TEMP": tmp}
            shared = _shared_memory_dir(spec)
            shared.mkdir(mode=0o700, exist_ok=True)
            unisolated["POX_SHARED_MEMORY_DIR"] = str(shared)
            return None, {**unisolated, **self._dataset_env(isolated=False)}
        plan_outputs(sandbox, spec.workdir, spec.outputs)
        launch = sandbox_launch(
            spec.argv or spec.command,
            workdir=spec.workdir,
            sandbox=sandbox,
            network=spec.network,
            visible=self._visible(spec),
            memo=self._view_memo,
        )
        return launch, self._private_env()

    def _dataset_env(self, *, isolated: bool) -> dict[str, str]:
        """For confidential datasets (datasets/job.py): the measurement this job presents to the
        key broker, and (isolated only) /run, a tmpfs private to the job, for plaintext."""
        env = {"POX_ENCLAVE_MEASUREMENT": self.measurement()}
        return {**env, "POX_MEMORY_DIR": "/run"} if isolated else env

    def _outcome(
        self,
        spec: JobSpec,
        code: int,
        started: str,
        discarded: tuple[str, ...],
        passed: tuple[str, ...],
    ) -> RunOutcome:
        return RunOutcome(
            exit_code=code,
            started_on=started,
            finished_on=utc_now(),
            isolated=self._isolated,
            isolation=self.describe_isolation(),
            discarded_writes=discarded,
            environment_names=passed,
        )

    def cancel_all(self) -> None:
        self._jobs.stop_all()


def _shared_memory_dir(spec: JobSpec) -> Path:
    """Unisolated jobs only: the job's 0700 directory in /dev/shm for dataset plaintext
    (datasets/job.py), removed after the job whatever its end."""
    return Path("/dev/shm") / f"pox-job-{spec.invocation_id}"
