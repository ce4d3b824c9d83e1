"""Snakemake glue: the `pox` executor plugin (`snakemake --executor pox`). Nothing else lives here.

`non_local_exec=False` makes every job reach this executor, localrules and action-less rules
included, so no job escapes attestation (with `True`, Snakemake would run localrules itself).
Each job's own Snakemake command runs through the enclave runtime on a worker thread; when it ends
the recorder signs and logs its statement, then the job is reported to Snakemake. Every attempt of
a retried job is recorded; a failed attempt is recorded as failed.
"""

import asyncio
import dataclasses
import os
import shlex
import tempfile
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
from pox_executor.enclave.commit import wait_for_discarded_stages
from pox_executor.enclave.runtime import EnclaveRuntime, JobSpec, OutputSpec, exec_command
from pox_executor.errors import PoxError
from pox_executor.jobfacts import (
    DirectShell,
    PreparedScript,
    direct_shell_command,
    job_facts,
    prepared_python_script,
    uses_output_cache,
)
from pox_executor.primitives import sha256_bytes
from pox_executor.provenance.bundle import STATUS_FAILED, STATUS_SUCCEEDED
from pox_executor.provenance.names import EXTERNAL_PREFIX, is_external, record_name
from pox_executor.provenance.recorder import JobFacts, RunRecorder, discarded_writes_line

if TYPE_CHECKING:
    from pox_executor.chain.client import ChainClient
    from pox_executor.chain.runner import ChainRunner
    from pox_executor.dispatch.kubernetes import KubernetesDispatcher
    from pox_executor.dispatch.slurm import SlurmDispatcher
    from pox_executor.provenance.recorder import ChallengeSource


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
    shared_home: bool = field(
        default=False,
        metadata={
            "help": "Give all jobs one home directory (.pox/home, kept between runs) instead of "
            "a fresh private one per job, so caches under ~ persist (sim backend).",
            "env_var": False,
        },
    )
    spawn_all: bool = field(
        default=False,
        metadata={
            "help": "Run every job through a Snakemake subprocess, plain shell and Python "
            "script jobs included (by default those run directly, as under the local "
            "executor, which saves 1-3 s per job).",
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
    dispatch: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default=None,
        metadata={
            "help": "Hand each job to a cluster engine instead of running it here: 'slurm' "
            "(sbatch; on the node `pox jobstep` runs it in --pox-backend and signs its "
            "statement; see docs/slurm.md) or 'kubernetes' (a Job per job in a Confidential "
            "Containers pod, settings in pox-kubernetes.toml; see docs/scale.md). The working "
            "directory must be on a filesystem the nodes share.",
            "env_var": False,
        },
    )
    ipfs: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default=None,
        metadata={
            "help": "IPFS node (Kubo RPC API URL, e.g. http://127.0.0.1:5001) that receives the "
            "run's sealed results (`pox dataset seal`); by default they go to the local "
            "content store .pox/store.",
            "env_var": True,
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
    sms: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default=None,
        metadata={
            "help": "URL of a PoX key broker (`pox sms serve`): a PoCo enclave challenge key per "
            "task (job record) is made and held there, the host sees only its address. Without "
            "it the host makes one per session (.pox/enclave-keys), and the log says so.",
            "env_var": True,
        },
    )
    sms_token_file: Optional[str] = field(  # noqa: UP045 - Snakemake requires Optional
        default=None,
        metadata={
            "help": "File holding the key broker's admin token (default: $POX_SMS_TOKEN).",
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
    job: JobExecutorInterface | None = None  # set when Snakemake's output cache covers it


def _done(result: str | None) -> Future[str | None]:
    future: Future[str | None] = Future()
    future.set_result(result)
    return future


def _local(name: str) -> str:
    """Where a statement name lives, for the runtime: relative inside, absolute outside."""
    return name[len(EXTERNAL_PREFIX) :] if is_external(name) else name


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
                    shared_home=self.settings.shared_home,
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
                requester=chain_client.accounts.address("requester") if chain_client else None,
                challenge_source=self._challenge_source(),
            )
            self.chain: ChainRunner | None = self._start_chain(chain_client)
            self._dispatcher = self._open_dispatcher()
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
        self._opening_started = False
        self._readable_sources: set[str] | None = None
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
                **({"dispatch": self.settings.dispatch} if self.settings.dispatch else {}),
            },
        }

    def _open_dispatcher(self) -> "SlurmDispatcher | KubernetesDispatcher | None":
        """The cluster dispatcher (`--pox-dispatch`), which then runs every job: docs/slurm.md."""
        if not self.settings.dispatch:
            return None
        from pox_executor.dispatch.slurm import DispatchOptions, open_dispatcher

        options = DispatchOptions(
            backend=self.settings.backend,
            isolate=not self.settings.no_isolation,
            default_image=self.settings.default_image,
            shared_home=self.settings.shared_home,
        )
        if self.settings.dispatch == "kubernetes":
            from pox_executor.dispatch.kubernetes import open_kubernetes_dispatcher

            return open_kubernetes_dispatcher(self.recorder, options, logger=self.logger)
        return open_dispatcher(self.settings.dispatch, self.recorder, options, logger=self.logger)

    def _challenge_source(self) -> "ChallengeSource | None":
        """The key broker that holds enclave challenges (--pox-sms), or None: the host does."""
        if not self.settings.sms:
            return None
        from pox_executor.sms.scheduler import BrokerChallengeSource, token_from

        return BrokerChallengeSource(
            self.settings.sms,
            token_from(self.settings.sms_token_file),
            self.workdir,
            measurement=self.runtime.measurement(),
        )

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
        """Record every workflow source Snakemake loaded, with its digest, once per session.

        Sources outside the working directory are named `external:/abs/path`
        (`provenance.names`), never left out.
        """
        if self._sources_recorded:
            return
        self._sources_recorded = True
        names = sorted({record_name(p, self.workdir) for p in self._source_paths()})
        config = dict(getattr(self.workflow, "config", {}) or {})
        settings = getattr(self.workflow, "config_settings", None)
        overrides = dict(getattr(settings, "config", None) or {})
        self.recorder.record_sources(names, config, open_now=False, config_overrides=overrides)

    def _open_session(self) -> None:
        """Worker thread: append the session's opening while the first job runs. A failure is
        only logged: the first record opens the session again and reports the error there."""
        try:
            self.recorder.ensure_open()
        except Exception as exc:
            self.logger.debug(f"PoX: opening the session beside the first job failed: {exc}")

    def _source_paths(self) -> list[Path]:
        """Absolute paths of the workflow's source files (Snakefiles, includes, scripts...)."""
        try:
            sources = [str(s) for s in self.workflow.dag.get_sources()]
        except Exception:
            sources = []
        sources.append(str(self.workflow.main_snakefile))
        paths = []
        for source in sources:
            if "://" in source:
                continue
            path = Path(os.path.abspath(source))
            if path.is_file():
                paths.append(path)
        return paths

    def _readable(self, facts: list[JobFacts]) -> tuple[str, ...]:
        """Absolute paths outside the working directory the job must read.

        Every workflow source (and the main Snakefile's directory, which a spawned Snakemake
        reads), Snakemake's runtime source cache, the rule's script or notebook and declared
        inputs outside the working directory.
        """
        if self._readable_sources is None:
            found = {str(p) for p in self._source_paths()}
            # a source reached through a symlink (a shared rules/ folder linked into the
            # workflow) is read at its target too: a job that parses the Snakefile follows it
            found |= {os.path.realpath(p) for p in found}
            found.add(os.path.dirname(os.path.abspath(str(self.workflow.main_snakefile))))
            # Snakemake's runtime source cache: `workflow.source_path()` results live there.
            cache = getattr(getattr(self.workflow, "sourcecache", None), "runtime_cache_path", None)
            if cache:
                found.add(os.path.abspath(str(cache)))
            self._readable_sources = found
        found = set(self._readable_sources)
        for f in facts:
            for name in (*f.inputs, f.script or "", *f.extra_code):
                if is_external(name):
                    found.add(name[len(EXTERNAL_PREFIX) :])
        inside = str(self.workdir).rstrip("/") + "/"
        return tuple(sorted(p for p in found if not (p + "/").startswith(inside)))

    def _env_passthrough(self) -> tuple[str, ...]:
        """Names declared with `envvars:` in the workflow or `--envvars` on the command line."""
        names = set(getattr(self.workflow, "envvars", None) or ())
        remote = getattr(self.workflow, "remote_execution_settings", None)
        names.update(getattr(remote, "envvars", None) or ())
        return tuple(sorted(str(n) for n in names))

    def _spawn_command(self, job: JobExecutorInterface) -> str:
        """Snakemake's own command for the job, run in this working directory.

        `--directory` makes the spawned Snakemake ignore the Snakefile's `workdir:` directive (the
        job already runs in the directory it chose; applying it again would nest it). A handover
        rule receives every resource the main process has, as under the local executor.
        """
        parts = [self.format_job_exec(job), "--directory", shlex.quote(str(self.workdir))]
        if not job.is_group() and getattr(job.rule, "is_handover", False):
            handed = [
                f"{name}={getattr(value, 'value', value)}"
                for name, value in self.workflow.global_resources.items()
                if not name.startswith("_") and getattr(value, "value", value) is not None
            ]
            if handed:
                parts += ["--resources", *(shlex.quote(h) for h in handed)]
        return " ".join(parts)

    def _direct_command(
        self, direct: DirectShell, invocation_id: str
    ) -> tuple[tuple[str, ...], Path | None]:
        """The argv of a plain shell job and the script written for it, if any.

        A command over one argument's limit (64 KiB) goes into a script under `.snakemake/`, as
        Snakemake's `shell()` does, instead of failing with E2BIG.
        """
        if not direct.too_long:
            return (direct.executable, "-c", direct.body), None
        scripts = self.workdir / ".snakemake" / "pox-shell"
        scripts.mkdir(parents=True, exist_ok=True)
        script = scripts / f"{invocation_id}.sh"
        script.write_text(direct.body + "\n", encoding="utf-8")
        return (direct.executable, str(script)), script

    def _write_prepared(
        self, prepared: PreparedScript, facts: JobFacts
    ) -> tuple[DirectShell, JobFacts, Path]:
        """Write a prepared `script:` job's file where Snakemake writes it (`.snakemake/scripts/`,
        named `tmp...<script name>`); the shell command that runs it, the job's facts naming the
        file's digest and that command, and the file."""
        directory = self.workdir / ".snakemake" / "scripts"
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            suffix="." + prepared.filename, dir=directory, delete=False
        ) as handle:
            handle.write(prepared.content)
        written = Path(handle.name)
        relative = written.relative_to(self.workdir).as_posix()
        facts = dataclasses.replace(
            facts,
            prepared_script_sha256=sha256_bytes(prepared.content),
            prepared_command=prepared.command_for(relative),
        )
        return prepared.shell_for(relative), facts, written

    # -- Snakemake executor API -------------------------------------------------------------

    def run_job(self, job: JobExecutorInterface) -> None:
        self._record_sources_once()
        members = list(job.jobs) if job.is_group() else [job]
        direct = None if self.settings.spawn_all else direct_shell_command(job)
        formatted = direct.formatted if direct is not None else None
        facts = [job_facts(m, self.workdir, formatted_shell=formatted) for m in members]
        self._failed_jobids.difference_update(f.jobid for f in facts)  # a retry starts afresh
        self._edges.extend(self._edges_of(members))
        invocation_id = str(uuid.uuid4())
        cached = not job.is_group() and uses_output_cache(job)
        prepared = None
        if direct is None and not self.settings.spawn_all and self.runtime.name == "sim":
            # The prepared file runs on this interpreter with this process's search path, which
            # the sim sandbox shows the job; a container image has its own (docker.py).
            prepared = prepared_python_script(job)
        scripts: list[Path] = []
        if cached or direct is not None or prepared is not None:
            # As Snakemake's local executor does: remove stale outputs, create output dirs.
            self.workflow.async_run(job.prepare())
        if cached and self._fetch_from_cache(job):
            self._running[invocation_id] = _Running(members=facts, future=_done(None))
            self.report_job_submission(SubmittedJobInfo(job=job, external_jobid=invocation_id))
            return
        if prepared is not None:
            direct, facts[0], kept = self._write_prepared(prepared, facts[0])
            if self.workflow.execution_settings.cleanup_scripts:
                scripts.append(kept)
        argv: tuple[str, ...] = ()
        if direct is not None:
            argv, long_script = self._direct_command(direct, invocation_id)
            scripts += [long_script] if long_script else []
            command, env = exec_command(argv), direct.env
        else:
            command, env = self._spawn_command(job), {}
        writable = [
            OutputSpec(path=_local(o.path), is_directory=o.is_directory)
            for f in facts
            for o in f.outputs
            if not o.is_transient  # a pipe or service output ends with its group
        ] + [OutputSpec(path=_local(p)) for f in facts for p in f.logs]
        benchmark = [getattr(m, "benchmark", None) for m in members]
        writable += [OutputSpec(path=str(b)) for b in benchmark if b]
        spec = JobSpec(
            invocation_id=invocation_id,
            command=command,
            argv=argv,
            workdir=self.workdir,
            outputs=tuple(writable),
            log_path=self.recorder.bundle.logs_dir / f"{invocation_id}.log",
            network=any(f.network for f in facts),
            threads=max(f.threads for f in facts),
            mem_mb=_mem_mb(facts),
            container=next((f.container for f in facts if f.container), None),
            env=env,
            env_passthrough=self._env_passthrough(),
            readable=self._readable(facts),
        )
        if not self._opening_started and self._dispatcher is None:
            # The session's signed opening (the enclave challenge, evidence, the bundle's first
            # writes: about 0.1 s) is made beside the first job instead of ahead of its record.
            self._opening_started = True
            self._pool.submit(self._open_session)
        future = self._pool.submit(self._execute, facts, spec, tuple(scripts))
        self._running[invocation_id] = _Running(
            members=facts, future=future, job=job if cached else None
        )
        future.add_done_callback(lambda _: self._job_finished.set())
        self.report_job_submission(
            SubmittedJobInfo(job=job, external_jobid=invocation_id, aux={"log": spec.log_path})
        )

    def _fetch_from_cache(self, job: JobExecutorInterface) -> bool:
        """Restore the job's outputs from Snakemake's output cache, as the local executor does.

        A hit means the job does not run, so no statement is signed for it; the log says so.
        """
        from snakemake.exceptions import CacheMissException

        try:
            self.workflow.async_run(job.rule.cache.fetch(job))
        except CacheMissException:
            return False
        self.logger.info(
            f"PoX: outputs of {job.rule.name} restored from Snakemake's output cache; the job "
            "did not run, so no statement is recorded for it"
        )
        return True

    def _execute(
        self, facts: list[JobFacts], spec: JobSpec, scripts: tuple[Path, ...]
    ) -> str | None:
        """Worker thread: hash inputs, run isolated, record each member. Returns an error text.

        `scripts`: files written for the job alone (a long shell command, a prepared script),
        removed once it ended.
        """
        if self._dispatcher is not None:  # the node runs, attests and signs it
            try:  # returns once the attempt is recorded: the scripts are no longer needed
                return self._dispatcher.execute(facts, spec, None)
            finally:
                for script in scripts:
                    script.unlink(missing_ok=True)
        inputs = {f.jobid: self.recorder.hash_inputs(f) for f in facts}
        try:
            outcome = self.runtime.run(spec, self._cancelled)
        finally:
            for script in scripts:
                script.unlink(missing_ok=True)
        if outcome.exit_code == 0:
            _create_touch_outputs(facts, self.workdir)
        missing: list[str] = []
        for f in facts:
            recorded = self.recorder.record(
                f,
                outcome,
                input_digests=inputs[f.jobid],
                invocation_id=spec.invocation_id
                if len(facts) == 1
                else f"{spec.invocation_id}/{f.jobid}",
                job_log=spec.log_path,
            )
            missing.extend(recorded.missing_outputs)
            discarded = discarded_writes_line(f, outcome)
            if discarded:
                self.logger.warning(discarded)
        if outcome.exit_code != 0:
            # Snakemake appends its own sentence right after this message: end it with a newline.
            return f"exit code {outcome.exit_code}; job log: {spec.log_path}\n"
        if missing:
            return (
                f"missing outputs (or not regular files): {', '.join(missing)}; "
                f"job log: {spec.log_path}\n"
            )
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
            if error is None and running.job is not None:
                try:
                    await running.job.rule.cache.store(running.job)
                except Exception as exc:
                    error = f"PoX could not store the outputs in Snakemake's output cache: {exc}\n"
            if error is None:
                self.report_job_success(job_info)
            else:
                self._failed_jobids.update(m.jobid for m in running.members)
                self.report_job_error(job_info, msg=error)

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        self._cancelled.set()
        self.runtime.cancel_all()
        if self._dispatcher is not None:
            self._dispatcher.cancel_all()

    def shutdown(self) -> None:
        with self.lock:
            self.wait = False  # what super().shutdown() sets, before waking the status loop
        self._job_finished.set()
        super().shutdown()
        self._pool.shutdown(wait=True)
        wait_for_discarded_stages()  # stages go on a background thread, off each job's path
        if self._dispatcher is not None:
            self._dispatcher.close()
        failed = bool(self._failed_jobids) or self._cancelled.is_set()
        status = STATUS_FAILED if failed else STATUS_SUCCEEDED
        self.recorder.finish(status, self._edges)
        if self.recorder.removed:
            self.logger.info("PoX: no job ran, so no run bundle was kept")
            return
        self.logger.info(
            f"PoX: run {self.recorder.run_id} {status}: {self.recorder.log.size} records, "
            f"root {self.recorder.log.root().hex()[:16]}...; verify with "
            f"`pox verify {self.recorder.run_id}`"
        )
        self._publish_sealed_results()
        if self.chain is not None:
            self.chain.finish()

    def _publish_sealed_results(self) -> None:
        from pox_executor.datasets.publish import publish_sealed_results

        try:
            published = publish_sealed_results(
                self.workdir, self.recorder.producers, ipfs_url=self.settings.ipfs
            )
        except PoxError as exc:
            self.logger.warning(f"PoX: sealed results not published: {exc}")
            return
        target = self.settings.ipfs or ".pox/store"
        for manifest_path, cid in published:
            self.logger.info(f"PoX: sealed result {manifest_path.name[:-5]} -> {cid} ({target})")


_STATUS_CHECK_MAX_WAIT_S = 1.0


def _create_touch_outputs(facts: list[JobFacts], workdir: Path) -> None:
    """Create the job's missing touch() outputs before recording, as Snakemake will right after
    (it touches them once the job is reported done): the record then names the file that exists."""
    for f in facts:
        for out in f.outputs:
            if not out.is_touch:
                continue
            path = workdir / _local(out.path)
            if os.path.lexists(path):
                continue
            if out.is_directory:  # touch(directory(...))
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()


def _mem_mb(facts: list[JobFacts]) -> int | None:
    values = [f.resources.get("mem_mb") for f in facts]
    numbers = [int(v) for v in values if isinstance(v, int | float)]
    return max(numbers) if numbers else None
