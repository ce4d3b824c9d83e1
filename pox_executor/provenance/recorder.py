"""Turns finished job attempts into signed, logged records: the writer side of a run bundle.

The recorder opens (or resumes) the bundle and starts a session with a fresh signing key; the
session's signed opening (key, evidence binding it, sources, settings) is the first entry it
appends, its signed closing (status, counts) the last. For each attempt it hashes inputs and
outputs (names per `names.record_name`; only regular files and directories are read), builds the
statement, asks the runtime for evidence over the binding, signs the DSSE envelope and appends it.
It keeps the map output path -> (producer envelope digest, sha256) that makes parent links.
It knows nothing of Snakemake: the plugin hands it plain `JobFacts`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pox_executor.datasets.provenance import dataset_annotations
from pox_executor.enclave.runtime import EnclaveRuntime, RunOutcome
from pox_executor.errors import PoxError
from pox_executor.primitives import sha256_bytes, utc_now
from pox_executor.provenance.bundle import (
    STATUS_RUNNING,
    RunBundle,
    SessionIndex,
    WriterLock,
    find_resumable,
    list_runs,
)
from pox_executor.provenance.config_overrides import record_overrides
from pox_executor.provenance.digests import ContentWatch, DigestCache, FileDigest, Hasher
from pox_executor.provenance.dsse import serialize_envelope, sign_envelope
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.log import RunLog
from pox_executor.provenance.names import EXTERNAL_PREFIX, is_external, record_name
from pox_executor.provenance.records import (
    JobRecord,
    LogEntry,
    SessionClose,
    SessionOpen,
    job_task_id,
    read_entries,
    session_task_id,
)
from pox_executor.provenance.statement import (
    KIND_CODE,
    KIND_ENVIRONMENT,
    KIND_INPUT,
    KIND_PARENT,
    KIND_SOURCE,
    LOG_MEDIA_TYPE,
    Binding,
    JobRun,
    Resource,
    SessionClosing,
    SessionOpening,
    build_session_close,
    build_session_open,
    build_statement,
    evidence_byproduct,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputFile:
    path: str
    is_directory: bool = False
    is_temp: bool = False
    # pipe() and service() outputs live only while their group runs (a FIFO, a socket): they are
    # never committed, hashed or required to exist afterwards.
    is_transient: bool = False
    # touch(): Snakemake itself creates (or touches) the file after the job succeeds
    is_touch: bool = False


@dataclass(frozen=True)
class JobFacts:
    """A Snakemake job reduced to plain data (built in the main thread by the plugin)."""

    jobid: int
    rule: str
    attempt: int
    inputs: tuple[str, ...]
    outputs: tuple[OutputFile, ...]
    logs: tuple[str, ...]
    wildcards: Mapping[str, str]
    params: Mapping[str, Any]
    threads: int
    resources: Mapping[str, Any]
    shell_command: str | None
    script: str | None
    has_run_block: bool
    snakefile: str
    conda_env: str | None
    container: str | None
    network: bool
    extra_code: tuple[str, ...] = field(default_factory=tuple)
    # A `script:` job prepared in the main process (`jobfacts.PreparedScript`): the digest of
    # the file the job ran (Snakemake's preamble, then the script) and the command that ran it.
    prepared_script_sha256: str | None = None
    prepared_command: str | None = None


@dataclass(frozen=True)
class Producer:
    run_id: str
    envelope: str
    sha256: str


@dataclass(frozen=True)
class RecordedAttempt:
    """What `RunRecorder.record` logged: the envelope digest and the attempt's recorded status."""

    digest: str
    succeeded: bool
    missing_outputs: tuple[str, ...]


class ChallengeSource(Protocol):
    """A key broker that makes PoCo enclave challenges (sms.scheduler.BrokerChallengeSource):
    called with a task id (and the measurement of what ran it), returns the challenge address."""

    def __call__(self, task: str, measurement: str | None = None) -> str: ...


class RunRecorder:
    """Writer of one run bundle. Thread-safe: jobs record concurrently.

    A session's signed opening is appended lazily, before its first record (after the plugin
    handed over the workflow sources), and its closing by `finish`. A new run's directory is
    created with that opening, so a re-run with nothing to do (Snakemake may not even shut the
    executor down then) leaves no empty bundle.
    """

    def __init__(
        self,
        workdir: Path,
        runtime: EnclaveRuntime,
        *,
        snakefile: str,
        meta: dict[str, Any],
        resume: bool = True,
        requester: str | None = None,
        challenge_source: ChallengeSource | None = None,
    ) -> None:
        self.workdir = workdir
        # With a key broker (--pox-sms): makes the session's enclave challenge there and one per
        # job (its task), returns the address. None: the host makes one per session (labelled).
        self.challenge_source = challenge_source
        self.runtime = runtime
        self.requester = requester
        self._meta = dict(meta)
        self.hasher = Hasher(
            DigestCache(workdir / ".pox" / "cache" / "digests.sqlite"), content_watch=ContentWatch()
        )
        self._lock = threading.RLock()
        self.bundle, self._writer_lock, self.resumed = self._open_bundle(
            snakefile, meta, resume=resume
        )
        self.run_id = self.bundle.run_id
        self.key = SigningKey.generate()
        self.enclave_challenge: str | None = None
        existing = self._existing_entries()
        openings = [e for e in existing if isinstance(e, SessionOpen)]
        self.session_index = len(openings)
        # run.json is an index of the log: rebuild its sessions from the signed openings (a kill
        # between appending an opening and saving run.json must not lose one)
        self.bundle.index.sessions = [
            SessionIndex(
                index=o.session,
                line=o.line_no,
                key_name=o.key_name,
                keyid=o.public_key.keyid,
                public_key=o.public_key.hex(),
                started=o.started,
                backend=o.backend,
                isolated=o.isolated,
            )
            for o in openings
        ]
        self.key_name = f"pox-run-{self.run_id}-s{self.session_index}"
        self.log = RunLog(
            self.bundle.path,
            self.bundle.index.origin,
            self.key_name,
            self.key,
            checkpoint_now=False,
        )
        # the log as this session found it (a torn tail is gone now): what a resume continues
        self._continues = (self.log.size, self.log.root().hex()) if self.log.size else None
        self.producers: dict[str, Producer] = {}
        self._earlier: dict[tuple[str, str], Producer] | None = None
        for entry in self._existing_entries():
            if isinstance(entry, JobRecord) and entry.succeeded:
                for subject in entry.subjects:
                    if subject.sha256:
                        self.producers[subject.name] = Producer(
                            self.run_id, entry.digest, subject.sha256
                        )
        self.source_digests: list[FileDigest] = []
        self.config_sha256: str | None = None
        self.config_overrides: dict[str, dict[str, Any]] | None = None
        self.counts = {"succeeded": 0, "failed": 0}
        self.opened = False
        self.removed = False
        self._sources_at: str | None = None  # when the sources were handed over: session start

    # -- bundle and session ------------------------------------------------------------------

    def _open_bundle(
        self, snakefile: str, meta: dict[str, Any], *, resume: bool
    ) -> tuple[RunBundle, WriterLock | None, bool]:
        if resume:
            for bundle, lock in find_resumable(self.workdir, snakefile):
                entries = read_entries(bundle.attestations_path, strict=False)
                if entries and isinstance(entries[-1], SessionClose):
                    # killed after its signed closing, before run.json said so: it is finished
                    bundle.index.status = entries[-1].status
                    bundle.index.finished = entries[-1].finished
                    bundle.save()
                    lock.release()
                    continue
                log.info("PoX: resuming interrupted run %s", bundle.run_id)
                return bundle, lock, True
        fields = {k: meta[k] for k in _INDEX_META if k in meta}
        return RunBundle.new(self.workdir, {**fields, "snakefile": snakefile}), None, False

    def _existing_entries(self) -> list[LogEntry]:
        """The entries already in the log (a resumed run): strict, a bad line stops the run."""
        return read_entries(self.bundle.attestations_path, strict=True)

    def _sign(self, statement: dict[str, Any]) -> bytes:
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return serialize_envelope(sign_envelope(payload, self.key))

    def ensure_open(self) -> None:
        """Append this session's signed opening unless it is already in the log."""
        with self._lock:
            if self.opened:
                return
            if self._writer_lock is None:
                self.bundle.write_new()
                self._writer_lock = WriterLock(self.bundle.path)
                self._writer_lock.try_acquire()
            if self.challenge_source is not None:
                self.enclave_challenge = self.challenge_source(
                    session_task_id(self.run_id, self.session_index)
                )
            else:
                self.enclave_challenge = new_enclave_challenge(self.workdir)
                log.info(
                    "PoX: enclave challenge %s made on the host (.pox/enclave-keys): no key "
                    "broker configured (--pox-sms)",
                    self.enclave_challenge,
                )
            public_hex = self.key.public_key.hex()
            binding = Binding(
                nonce=secrets.token_hex(32),
                public_keys=(public_hex,),
                task_id=session_task_id(self.run_id, self.session_index),
                image_digest=self.runtime.image_digest(),
                enclave_challenge=self.enclave_challenge,
            )
            started = self._sources_at or utc_now()
            opening = SessionOpening(
                run_id=self.run_id,
                origin=self.bundle.index.origin,
                session=self.session_index,
                key_name=self.key_name,
                public_key=public_hex,
                evidence=self.runtime.evidence(binding.report_data()),
                binding=binding,
                backend=self.runtime.name,
                builder_id=self.runtime.builder_id(),
                isolation=self.runtime.describe_isolation(),
                isolated=self.runtime.isolated,
                workflow_sources=[
                    Resource(name=d.path, sha256=d.sha256) for d in self.source_digests
                ],
                config_sha256=self.config_sha256,
                snakemake_version=str(self._meta.get("snakemake_version", "unknown")),
                pox_version=str(self._meta.get("pox_version", "unknown")),
                settings=dict(self._meta.get("settings", {})),
                requester=self.requester,
                started=started,
                continues=self._continues,
                config_overrides=self.config_overrides,
            )
            index, _ = self.log.append(self._sign(build_session_open(opening)))
            self.bundle.index.sessions.append(
                SessionIndex(
                    index=self.session_index,
                    line=index + 1,
                    key_name=self.key_name,
                    keyid=self.key.public_key.keyid,
                    public_key=public_hex,
                    started=started,
                    backend=self.runtime.name,
                    isolated=self.runtime.isolated,
                )
            )
            self.bundle.index.status = STATUS_RUNNING
            self.bundle.save()
            self.opened = True

    def _earlier_producers(self) -> dict[tuple[str, str], Producer]:
        """(path, sha256) -> producer, over the other runs in this working directory."""
        if self._earlier is None:
            index: dict[tuple[str, str], Producer] = {}
            for bundle in list_runs(self.workdir):
                if bundle.run_id == self.run_id:
                    continue
                try:
                    entries = read_entries(bundle.attestations_path, strict=False)
                except PoxError:
                    continue
                for entry in entries:
                    if not isinstance(entry, JobRecord) or not entry.succeeded:
                        continue
                    for subject in entry.subjects:
                        if subject.sha256:
                            index[(subject.name, subject.sha256)] = Producer(
                                bundle.run_id, entry.digest, subject.sha256
                            )
            self._earlier = index
        return self._earlier

    def record_sources(
        self,
        sources: Sequence[str],
        config: Mapping[str, Any],
        *,
        open_now: bool = True,
        config_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        """Hash the workflow sources and config, which the session's opening names, and open
        the session. `config_overrides` (`snakemake --config`) are recorded by value in the
        opening (`provenance/config_overrides.py`), so `pox reproduce` can replay them.

        `open_now=False` (the plugin) appends the opening (the environment's description,
        evidence, a signature, the bundle's first writes) with the first record instead, on
        the worker thread of the first job rather than in its way; it still says the session
        started now, before any job did.
        """
        existing = sorted({_local(s) for s in sources if _is_regular(self.workdir / _local(s))})
        digests = self.hasher.digest_paths(existing, base=self.workdir)
        self.source_digests = [
            FileDigest(record_name(d.path, self.workdir), d.sha256, d.size_bytes) for d in digests
        ]
        config_bytes = json.dumps(config, sort_keys=True, default=str).encode("utf-8")
        with self._lock:
            self.config_sha256 = sha256_bytes(config_bytes)
            if config_overrides is not None:
                self.config_overrides = record_overrides(config_overrides)
            self.bundle.index.workflow_sources = [
                {"path": d.path, "sha256": d.sha256} for d in self.source_digests
            ]
            self.bundle.index.config_sha256 = self.config_sha256
            self._sources_at = utc_now()
            if open_now:
                self.ensure_open()

    # -- records -----------------------------------------------------------------------------

    def hash_inputs(self, facts: JobFacts) -> list[FileDigest]:
        """Digests of the job's inputs that exist, named per `names.record_name`.

        Only regular files and directories are read: a FIFO or device named as an input is
        recorded without a digest (see `_dependencies`), so it can never block the recorder.
        """
        local = [_local(p) for p in facts.inputs]
        present = [p for p in local if _is_regular(self.workdir / p, directories=True)]
        digests = self.hasher.digest_paths(present, base=self.workdir)
        return [
            FileDigest(record_name(p, self.workdir), d.sha256, d.size_bytes, d.is_directory)
            for p, d in zip(present, digests, strict=True)
        ]

    def record(
        self,
        facts: JobFacts,
        outcome: RunOutcome,
        *,
        input_digests: Sequence[FileDigest],
        invocation_id: str,
        job_log: Path,
    ) -> RecordedAttempt:
        """Build, attest, sign and append the statement of one attempt.

        An attempt that exited 0 but left a declared output missing (or not a regular file or
        directory inside the working directory) is recorded as failed, listing those outputs.
        """
        self.ensure_open()
        flags = {_local(o.path): o for o in facts.outputs if not o.is_transient}
        present = [p for p in flags if _is_regular_output(self.workdir, p)]
        missing = tuple(record_name(p, self.workdir) for p in flags if p not in present)
        succeeded = outcome.exit_code == 0 and not missing
        output_digests = self.hasher.digest_paths(present, base=self.workdir)
        subjects = [
            Resource(
                name=record_name(d.path, self.workdir),
                sha256=d.sha256,
                annotations={
                    **_output_annotations(flags[d.path], d),
                    **dataset_annotations(self.workdir, d.path, d.sha256),
                },
            )
            for d in output_digests
        ]
        log_bytes = job_log.read_bytes() if job_log.is_file() else b""
        log_name = record_name(job_log, self.workdir)
        if not subjects:
            subjects = [Resource(name=log_name, sha256=sha256_bytes(log_bytes))]
        dependencies = self._dependencies(facts, input_digests, outcome)
        image_digest = outcome.image_digest or self.runtime.image_digest()
        task_id = job_task_id(self.run_id, facts.jobid, facts.attempt)
        challenge = self.enclave_challenge
        if self.challenge_source is not None:  # PoCo's model: one challenge per task (docs/sms.md)
            challenge = self.challenge_source(task_id, outcome.measurement)
        binding = Binding(
            nonce=secrets.token_hex(32),
            public_keys=(self.key.public_key.hex(),),
            task_id=task_id,
            image_digest=image_digest,
            enclave_challenge=challenge,
        )
        evidence = self.runtime.evidence(binding.report_data(), measurement=outcome.measurement)
        job = JobRun(
            run_id=self.run_id,
            jobid=facts.jobid,
            rule=facts.rule,
            attempt=facts.attempt,
            status="succeeded" if succeeded else "failed",
            exit_code=outcome.exit_code,
            invocation_id=invocation_id,
            started_on=outcome.started_on,
            finished_on=outcome.finished_on,
            wildcards=facts.wildcards,
            params=facts.params,
            threads=facts.threads,
            resources=facts.resources,
            backend=self.runtime.name,
            builder_id=outcome.builder_id or self.runtime.builder_id(),
            isolated=outcome.isolated,
            isolation=outcome.isolation,
            discarded_writes=outcome.discarded_writes,
            missing_outputs=missing,
            environment_names=outcome.environment_names,
        )
        byproducts = [
            Resource(name=log_name, sha256=sha256_bytes(log_bytes), media_type=LOG_MEDIA_TYPE),
            evidence_byproduct(evidence, binding),
        ]
        statement = build_statement(
            job, subjects=subjects, dependencies=dependencies, byproducts=byproducts
        )
        _, digest = self.log.append(self._sign(statement))
        with self._lock:
            self.counts["succeeded" if succeeded else "failed"] += 1
            if succeeded:
                for subject in subjects:
                    if subject.sha256 is not None and subject.name != log_name:
                        self.producers[subject.name] = Producer(self.run_id, digest, subject.sha256)
        return RecordedAttempt(digest=digest, succeeded=succeeded, missing_outputs=missing)

    def _dependencies(
        self, facts: JobFacts, inputs: Sequence[FileDigest], outcome: RunOutcome
    ) -> list[Resource]:
        deps: list[Resource] = []
        hashed = {d.path for d in inputs}
        for path in map(_local, facts.inputs):
            name = record_name(path, self.workdir)
            local = self.workdir / path
            if name not in hashed and (local.exists() or local.is_symlink()):
                # neither a regular file nor a directory (FIFO, device, dangling link): not read
                deps.append(
                    Resource(
                        name=name,
                        annotations={"pox.kind": KIND_INPUT, "pox.not-regular": True},
                    )
                )
        parents: dict[str, Producer] = {}
        with self._lock:
            producers = dict(self.producers)
        for d in inputs:
            annotations: dict[str, Any] = {"pox.kind": KIND_INPUT}
            if d.is_directory:
                annotations["pox.directory"] = True
            producer = producers.get(d.path)
            if producer is None:
                producer = self._earlier_producers().get((d.path, d.sha256))
            directory, in_directory = _enclosing_producer(d.path, producers)
            if producer is None and in_directory is not None:
                # e.g. a file of a checkpoint's directory() output: link to the directory's job
                producer = in_directory
            if producer is None:
                annotations["pox.origin"] = "source"
            else:
                annotations["pox.origin"] = "job" if producer.run_id == self.run_id else "run"
                annotations["pox.producer"] = {
                    "run_id": producer.run_id,
                    "envelope": producer.envelope,
                }
                if producer is in_directory:
                    annotations["pox.producer"]["directory"] = directory
                if producer.run_id == self.run_id:
                    parents[producer.envelope] = producer
            annotations.update(dataset_annotations(self.workdir, d.path, d.sha256))
            deps.append(Resource(name=d.path, sha256=d.sha256, annotations=annotations))
        for envelope in sorted(parents):
            deps.append(
                Resource(
                    name=f"pox:envelope/{envelope[:16]}",
                    sha256=envelope,
                    annotations={"pox.kind": KIND_PARENT},
                )
            )
        deps.extend(self._code(facts))
        for name, sha256 in outcome.extra_code:  # code the runtime mounted (docker: `pox`)
            deps.append(Resource(name=name, sha256=sha256, annotations={"pox.kind": KIND_CODE}))
        for src in self.source_digests:
            deps.append(
                Resource(name=src.path, sha256=src.sha256, annotations={"pox.kind": KIND_SOURCE})
            )
        deps.extend(self._environment(facts, outcome))
        return deps

    def _code(self, facts: JobFacts) -> list[Resource]:
        code: list[Resource] = []
        if facts.shell_command is not None:
            code.append(
                Resource(
                    name="pox:shell-command",
                    sha256=sha256_bytes(facts.shell_command.encode("utf-8")),
                    annotations={"pox.kind": KIND_CODE, "command": facts.shell_command},
                )
            )
        if facts.has_run_block:
            code.append(
                Resource(
                    name=f"pox:run-block/{facts.rule}",
                    annotations={"pox.kind": KIND_CODE, "snakefile": facts.snakefile},
                )
            )
        if facts.prepared_script_sha256 is not None:
            code.append(
                Resource(
                    name=f"pox:prepared-script/{facts.rule}",
                    sha256=facts.prepared_script_sha256,
                    annotations={
                        "pox.kind": KIND_CODE,
                        "script": facts.script,
                        "command": facts.prepared_command,
                    },
                )
            )
        for code_name in (facts.script, *facts.extra_code):
            if code_name is None:
                continue
            path = _local(code_name)
            name = record_name(path, self.workdir)
            if _is_regular(self.workdir / path):
                digest = self.hasher.digest_one(path, base=self.workdir)
                code.append(
                    Resource(name=name, sha256=digest.sha256, annotations={"pox.kind": KIND_CODE})
                )
            else:
                code.append(
                    Resource(name=name, annotations={"pox.kind": KIND_CODE, "pox.missing": True})
                )
        return code

    def _environment(self, facts: JobFacts, outcome: RunOutcome) -> list[Resource]:
        image = outcome.image_digest or self.runtime.image_digest()
        env = [
            Resource(
                name="pox:environment/image",
                sha256=image.removeprefix("sha256:"),
                annotations={"pox.kind": KIND_ENVIRONMENT, "backend": self.runtime.name},
            )
        ]
        if facts.conda_env:
            full = self.workdir / facts.conda_env
            annotations: dict[str, Any] = {"pox.kind": KIND_ENVIRONMENT, "conda": facts.conda_env}
            sha = (
                self.hasher.digest_one(facts.conda_env, base=self.workdir).sha256
                if _is_regular(full)
                else sha256_bytes(facts.conda_env.encode("utf-8"))
            )
            env.append(Resource(name="pox:environment/conda", sha256=sha, annotations=annotations))
        if facts.container:
            env.append(
                Resource(
                    name="pox:environment/container",
                    sha256=sha256_bytes(facts.container.encode("utf-8")),
                    annotations={"pox.kind": KIND_ENVIRONMENT, "image": facts.container},
                )
            )
        return env

    def append_collected(self, line: bytes, record: JobRecord) -> tuple[int, str]:
        """Append a job record signed elsewhere (a dispatched job's node, `dispatch.collector`
        checked it), counting its attempt and its outputs as producers like `record` does."""
        self.ensure_open()
        index, digest = self.log.append(line)
        with self._lock:
            self.counts["succeeded" if record.succeeded else "failed"] += 1
            if record.succeeded:
                byproducts = record.statement["predicate"]["runDetails"]["byproducts"]
                logs = {b.get("name") for b in byproducts if b.get("mediaType") == LOG_MEDIA_TYPE}
                for subject in record.subjects:
                    if subject.sha256 is not None and subject.name not in logs:
                        self.producers[subject.name] = Producer(self.run_id, digest, subject.sha256)
        return index, digest

    # -- end of run --------------------------------------------------------------------------

    def finish(self, status: str, dag_edges: Sequence[Mapping[str, Any]]) -> None:
        """Append the session's signed closing (status, counts, size before it), update run.json.

        A new run whose session never opened (Snakemake had nothing to do) leaves nothing.
        """
        with self._lock:
            if not self.opened and not self.resumed and self.log.size == 0:
                self.hasher.close()
                self.removed = True  # nothing was written: the bundle never existed on disk
                return
            self.ensure_open()
            finished = utc_now()
            closing = SessionClosing(
                run_id=self.run_id,
                session=self.session_index,
                size=self.log.size,
                status=status,
                succeeded=self.counts["succeeded"],
                failed=self.counts["failed"],
                finished=finished,
            )
            self.log.append(self._sign(build_session_close(closing)))
            self.log.close()  # the checkpoint covers the closing before run.json says finished
            index = self.bundle.index
            index.status = status
            index.finished = finished
            index.dag_edges = [dict(edge) for edge in dag_edges]
            index.tree_size = self.log.size
            index.root_sha256 = self.log.root().hex()
            self.bundle.save()
        self.hasher.close()
        if self._writer_lock is not None:
            self._writer_lock.release()


def discarded_writes_line(facts: JobFacts, outcome: RunOutcome, *, shown: int = 3) -> str | None:
    """One console line for a job whose undeclared writes the sandbox discarded, else None."""
    writes = outcome.discarded_writes
    if not writes:
        return None
    first = ", ".join(writes[:shown]) + (", ..." if len(writes) > shown else "")
    return (
        f"PoX: job {facts.jobid} ({facts.rule}): {len(writes)} writes outside its declared "
        f"outputs were discarded: {first}"
    )


def _local(name: str) -> str:
    """A JobFacts name as a path the recorder can open: relative to the workdir, or absolute."""
    return name[len(EXTERNAL_PREFIX) :] if is_external(name) else name


def _is_regular(path: Path, *, directories: bool = False) -> bool:
    """Whether `path` is a regular file (or, if allowed, a directory), following links."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or (directories and stat.S_ISDIR(mode))


def _is_regular_output(workdir: Path, path: str) -> bool:
    """A declared output that may be committed: a regular file or directory that, after
    resolving links, is still inside the working directory."""
    local = workdir / path
    if not _is_regular(local, directories=True):
        return False
    if os.path.islink(local):
        try:
            local.resolve().relative_to(workdir.resolve())
        except (OSError, ValueError):
            return False
    return True


# run.json fields the plugin's meta may set when a new bundle is created
_INDEX_META = ("snakemake_version", "pox_version", "workdir", "settings")


ENCLAVE_KEYS_DIR = "enclave-keys"


def new_enclave_challenge(workdir: Path) -> str:
    """A fresh PoCo enclave challenge key for this session; returns its address.

    Until the SMS releases challenge keys to attested enclaves, the enclave runtime's host
    generates it here and keeps it in `.pox/enclave-keys/<address>.key` (mode 0600, outside the
    bundle) so that `pox anchor` can still sign results after a crash. Never printed.
    """
    # cryptography and eth-hash, not eth_account: its import alone took 0.8 s of every run
    key = ec.generate_private_key(ec.SECP256K1())
    secret = key.private_numbers().private_value.to_bytes(32, "big")
    address = ethereum_address(key.public_key())
    directory = workdir / ".pox" / ENCLAVE_KEYS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{address}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret.hex() + "\n")
    return address


def ethereum_address(public_key: ec.EllipticCurvePublicKey) -> str:
    """The EIP-55 checksummed address of a secp256k1 public key (keccak256 of X || Y, last 20)."""
    from eth_hash.auto import keccak

    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    lower = keccak(point[1:])[-20:].hex()
    nibbles = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if int(n, 16) >= 8 else c for c, n in zip(lower, nibbles[:40], strict=True)
    )


def _output_annotations(out: OutputFile, digest: FileDigest) -> dict[str, Any]:
    annotations: dict[str, Any] = {"size_bytes": digest.size_bytes}
    if out.is_directory or digest.is_directory:
        annotations["pox.directory"] = True
    if out.is_temp:
        annotations["pox.temp"] = True
    return annotations


def _enclosing_producer(
    path: str, producers: Mapping[str, Producer]
) -> tuple[str | None, Producer | None]:
    """The innermost directory output of this run that contains `path`, and its producer."""
    for parent in PurePosixPath(path).parents:
        name = parent.as_posix()
        if name != "." and name in producers:
            return name, producers[name]
    return None, None
