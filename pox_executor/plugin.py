"""Snakemake glue: the `pox` executor plugin (`snakemake --executor pox`). Nothing else lives here.

`non_local_exec=False` makes every job reach this executor, localrules and action-less rules
included, so no job escapes attestation (with `True`, Snakemake would run localrules itself).
Each job's own Snakemake command runs through the enclave runtime on a worker thread; when it ends
the recorder signs and logs its statement, then the job is reported to Snakemake. Every attempt of
a retried job is recorded; a failed attempt is recorded as failed.
"""

import asyncio
import threading
import uuid
from collections.abc import AsyncGenerator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import (
    CommonSettings,
    ExecutorSettingsBase,
)

from pox_executor import __version__
from pox_executor.enclave.backends import BackendOptions, backend_names, create_runtime
from pox_executor.enclave.runtime import EnclaveRuntime, JobSpec, OutputSpec
from pox_executor.errors import PoxError
from pox_executor.jobfacts import direct_shell_command, job_facts
from pox_executor.provenance.bundle import STATUS_FAILED, STATUS_SUCCEEDED
from pox_executor.provenance.recorder import JobFacts, RunRecorder

if TYPE_CHECKING:
    from pox_executor.chain.client import ChainClient
    from pox_executor.chain.runner import ChainRunner


@dataclass
class ExecutorSettings(ExecutorSettingsBase):  # type: ignore[misc]
    backend: str = field(
        default="sim",
        metadata={
            "help": "Enclave runtime that runs each job: 'sim' (bubblewrap isolation, simulated "
            "evidence that strict verification rejects) or 'docker' (one container per job in "
            "a measured image).",
            "env_var": False,
        },
    )
    default_image: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default=None,
        metadata={
            "help": "Image for rules without a `container:` directive (container backends), "
            "e.g. an image built by `pox images build python`.",
            "env_var": False,
        },
    )
    no_isolation: bool = field(
        default=False,
        metadata={
            "help": "Run jobs without isolation (sim backend). Every statement then records "
            "that the job was not isolated.",
            "env_var": False,
        },
    )
    spawn_all: bool = field(
        default=False,
        metadata={
            "help": "Run every job through a Snakemake subprocess, plain shell jobs included "
            "(by default those run their command directly, which saves 1-2 s per job).",
            "env_var": False,
        },
    )
    new_run: bool = field(
        default=False,
        metadata={
            "help": "Always start a new run bundle; by default an interrupted run of the same "
            "Snakefile in this directory is resumed.",
            "env_var": False,
        },
    )
    chain: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default="local",
        metadata={
            "help": "Chain profile the run is anchored on: 'local' (a bloxberg-like anvil "
            "devnet that starts itself), 'bloxberg', a profile named in "
            "~/.config/pox/chains.toml, or 'none' (anchor later with `pox anchor`).",
            "env_var": True,
        },
    )
    deals: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default="batched",
        metadata={
            "help": "PoCo deals for the jobs: 'batched' (one deal per app, results finalized "
            "in batches), 'per-job' (one deal and task per job) or 'none' (anchor only).",
            "env_var": True,
        },
    )
    anchor_every: int = field(
        default=1000,
        metadata={
            "help": "Anchor an intermediate checkpoint every this many records.",
            "env_var": False,
        },
    )
    anchor_interval: int = field(
        default=600,
        metadata={
            "help": "Anchor an intermediate checkpoint at least every this many seconds.",
            "env_var": False,
        },
    )
    chain_timeout: int = field(
        default=30,
        metadata={
            "help": "Seconds to keep retrying the chain at the end of the run before leaving "
            "the anchoring pending for `pox anchor`.",
            "env_var": False,
        },
    )


common_settings = CommonSettings(
    non_local_exec=False,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)


@dataclass
class _Running:
    members: list[JobFacts]
    future: Future[str | None]


class Executor(RemoteExecutor):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before super().__init__: it starts the status loop, which `sleep`s on this event.
        self._job_finished = threading.Event()
        super().__init__(*args, **kwargs)

    def __post_init__(self) -> None:
        settings = self.workflow.executor_settings
        if settings is None:
            settings = ExecutorSettings()
        self.settings: ExecutorSettings = settings
        self.workdir = Path.cwd().resolve()
        if self.settings.backend not in backend_names():
            raise WorkflowError(
                f"--pox-backend {self.settings.backend!r} is not available; "
                f"choose one of: {', '.join(backend_names())}"
            )
        try:
            self.runtime: EnclaveRuntime = create_runtime(
                self.settings.backend,
                BackendOptions(
                    isolate=not self.settings.no_isolation,
                    default_image=self.settings.default_image,
                ),
            )
            self.runtime.prepare(self.workdir)
            chain_client = self._connect_chain()
            self.recorder = RunRecorder(
                self.workdir,
                self.runtime,
                snakefile=str(Path(str(self.workflow.main_snakefile)).resolve()),
                meta=self._run_meta(),
                resume=not self.settings.new_run,
            )
            self.chain: ChainRunner | None = self._start_chain(chain_client)
        except PoxError as exc:
            raise WorkflowError(exc.diagnostics()) from exc
        if not self.runtime.isolated:
            self.logger.warning(
                f"PoX: jobs will NOT be isolated ({self.runtime.describe_isolation()}); every "
                "job statement records this. Install Debian's 'bubblewrap' and run where "
                "namespaces can be created to isolate jobs."
            )
        self.logger.info(
            f"PoX: run {self.recorder.run_id} ({'resumed' if self.recorder.resumed else 'new'}), "
            f"backend {self.runtime.name}, isolation: {self.runtime.describe_isolation()}; "
            f"bundle {self.recorder.bundle.path}"
        )
        self._sources_recorded = False
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="pox-job")
        self._running: dict[str, _Running] = {}
        self._cancelled = threading.Event()
        self._edges: list[dict[str, Any]] = []
        self._failed_jobids: set[int] = set()  # jobs whose latest attempt failed

    def _run_meta(self) -> dict[str, Any]:
        import snakemake

        return {
            "snakemake_version": str(getattr(snakemake, "__version__", "unknown")),
            "pox_version": __version__,
            "workdir": str(self.workdir),
            "settings": {
                "backend": self.settings.backend,
                "isolate": not self.settings.no_isolation,
                "new_run": self.settings.new_run,
                "chain": self.settings.chain or "none",
                "deals": self.settings.deals or "batched",
            },
        }

    def _connect_chain(self) -> "ChainClient | None":
        if (self.settings.chain or "none") == "none":
            return None  # nothing to anchor: do not import web3 (seconds of start-up)
        from pox_executor.chain.runner import ChainRunner

        return ChainRunner.connect(
            self.settings.chain or "none",
            deals=self.settings.deals or "batched",
            timeout_s=self.settings.chain_timeout,
        )

    def _start_chain(self, client: "ChainClient | None") -> "ChainRunner | None":
        if client is None:
            return None
        from pox_executor.chain.runner import ChainRunner

        return ChainRunner.start(
            self.recorder,
            client,
            deals=self.settings.deals or "batched",
            every_records=self.settings.anchor_every,
            every_seconds=self.settings.anchor_interval,
            timeout_s=self.settings.chain_timeout,
            log=self.logger,
        )

    def _record_sources_once(self) -> None:
        if self._sources_recorded:
            return
        self._sources_recorded = True
        try:
            sources = [str(s) for s in self.workflow.dag.get_sources()]
        except Exception:
            sources = []
        sources.append(str(self.workflow.main_snakefile))
        rel = []
        for s in sources:
            p = Path(s)
            p = p if p.is_absolute() else self.workdir / p
            try:
                rel.append(p.resolve().relative_to(self.workdir).as_posix())
            except ValueError:
                continue
        config = dict(getattr(self.workflow, "config", {}) or {})
        self.recorder.record_sources(rel, config)

    # -- Snakemake executor API -------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface) -> None:
        self._record_sources_once()
        members = list(job.jobs) if job.is_group() else [job]
        facts = [job_facts(m, self.workdir) for m in members]
        self._failed_jobids.difference_update(f.jobid for f in facts)  # a retry starts afresh
        self._edges.extend(self._edges_of(members))
        invocation_id = str(uuid.uuid4())
        direct = None if self.settings.spawn_all else direct_shell_command(job)
        if direct is not None:
            # As Snakemake's local executor does: remove stale outputs, create output dirs.
            self.workflow.async_run(job.prepare())
            command, env = direct
        else:
            command, env = self.format_job_exec(job), {}
        writable = [
            OutputSpec(path=o.path, is_directory=o.is_directory) for f in facts for o in f.outputs
        ] + [OutputSpec(path=p) for f in facts for p in f.logs]
        benchmark = [getattr(m, "benchmark", None) for m in members]
        writable += [OutputSpec(path=str(b)) for b in benchmark if b]
        spec = JobSpec(
            invocation_id=invocation_id,
            command=command,
            workdir=self.workdir,
            outputs=tuple(writable),
            log_path=self.recorder.bundle.logs_dir / f"{invocation_id}.log",
            network=any(f.network for f in facts),
            threads=max(f.threads for f in facts),
            mem_mb=_mem_mb(facts),
            container=next((f.container for f in facts if f.container), None),
            env=env,
        )
        future = self._pool.submit(self._execute, facts, spec)
        self._running[invocation_id] = _Running(members=facts, future=future)
        future.add_done_callback(lambda _: self._job_finished.set())
        self.report_job_submission(
            SubmittedJobInfo(job=job, external_jobid=invocation_id, aux={"log": spec.log_path})
        )

    def _execute(self, facts: list[JobFacts], spec: JobSpec) -> str | None:
        """Worker thread: hash inputs, run isolated, record each member. Returns an error text."""
        inputs = {f.jobid: self.recorder.hash_inputs(f) for f in facts}
        outcome = self.runtime.run(spec, self._cancelled)
        for f in facts:
            self.recorder.record(
                f,
                outcome,
                input_digests=inputs[f.jobid],
                invocation_id=spec.invocation_id
                if len(facts) == 1
                else f"{spec.invocation_id}/{f.jobid}",
                job_log=spec.log_path,
            )
        if outcome.exit_code != 0:
            return f"exit code {outcome.exit_code}; log: {spec.log_path}"
        return None

    def _edges_of(self, members: list[JobExecutorInterface]) -> list[dict[str, Any]]:
        edges = []
        try:
            deps = self.workflow.dag.dependencies
        except Exception:
            return []
        for m in members:
            for parent, files in deps[m].items():
                edges.append(
                    {
                        "parent": {"jobid": int(parent.jobid), "rule": str(parent.rule.name)},
                        "child": {"jobid": int(m.jobid), "rule": str(m.rule.name)},
                        "files": sorted(str(f) for f in files),
                    }
                )
        return edges

    async def sleep(self) -> None:
        """Between status checks: wake as soon as a job finishes instead of polling on a timer."""
        await asyncio.to_thread(self._job_finished.wait, _STATUS_CHECK_MAX_WAIT_S)

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        # Cleared before looking: a job finishing from here on wakes the next `sleep` at once.
        self._job_finished.clear()
        for job_info in active_jobs:
            invocation_id = str(job_info.external_jobid)
            running = self._running.get(invocation_id)
            if running is None or not running.future.done():
                yield job_info
                continue
            del self._running[invocation_id]
            try:
                error = running.future.result()
            except Exception as exc:
                error = f"PoX could not run or record the job: {exc}"
            if error is None:
                self.report_job_success(job_info)
            else:
                self._failed_jobids.update(m.jobid for m in running.members)
                self.report_job_error(job_info, msg=error)

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        self._cancelled.set()
        self.runtime.cancel_all()

    def shutdown(self) -> None:
        with self.lock:
            self.wait = False  # what super().shutdown() sets, before waking the status loop
        self._job_finished.set()
        super().shutdown()
        self._pool.shutdown(wait=True)
        failed = bool(self._failed_jobids) or self._cancelled.is_set()
        status = STATUS_FAILED if failed else STATUS_SUCCEEDED
        self.recorder.finish(status, self._edges)
        self.logger.info(
            f"PoX: run {self.recorder.run_id} {status}: {self.recorder.log.size} records, "
            f"root {self.recorder.log.root().hex()[:16]}...; verify with "
            f"`pox verify {self.recorder.run_id}`"
        )
        if self.chain is not None:
            self.chain.finish()


_STATUS_CHECK_MAX_WAIT_S = 1.0


def _mem_mb(facts: list[JobFacts]) -> int | None:
    values = [f.resources.get("mem_mb") for f in facts]
    numbers = [int(v) for v in values if isinstance(v, int | float)]
    return max(numbers) if numbers else None
