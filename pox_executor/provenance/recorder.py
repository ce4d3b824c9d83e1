"""Turns finished job attempts into signed, logged records: the writer side of a run bundle.

The recorder opens (or resumes) the bundle, starts a session with a fresh signing key bound into
the runtime's evidence, and for each attempt hashes inputs and outputs, builds the statement,
asks the runtime for evidence over the binding, signs the DSSE envelope and appends it to the log.
It keeps the map output path -> (producer envelope digest, sha256) that makes parent links.
It knows nothing of Snakemake: the plugin hands it plain `JobFacts`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pox_executor.enclave.runtime import EnclaveRuntime, RunOutcome
from pox_executor.primitives import sha256_bytes, utc_now
from pox_executor.provenance.bundle import (
    STATUS_RUNNING,
    RunBundle,
    WriterLock,
    find_resumable,
    list_runs,
)
from pox_executor.provenance.checkpoint import vkey
from pox_executor.provenance.digests import DigestCache, FileDigest, Hasher
from pox_executor.provenance.dsse import serialize_envelope, sign_envelope
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.log import RunLog
from pox_executor.provenance.names import local_path
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
    build_statement,
    evidence_byproduct,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputFile:
    path: str
    is_directory: bool = False
    is_temp: bool = False


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


@dataclass(frozen=True)
class Producer:
    run_id: str
    envelope: str
    sha256: str


class RunRecorder:
    """Writer of one run bundle. Thread-safe: jobs record concurrently."""

    def __init__(
        self,
        workdir: Path,
        runtime: EnclaveRuntime,
        *,
        snakefile: str,
        meta: dict[str, Any],
        resume: bool = True,
    ) -> None:
        self.workdir = workdir
        self.runtime = runtime
        self.hasher = Hasher(DigestCache(workdir / ".pox" / "cache" / "digests.sqlite"))
        self._lock = threading.Lock()
        self.bundle, self._writer_lock, self.resumed = self._open_bundle(
            snakefile, meta, resume=resume
        )
        self.run_id = self.bundle.run_id
        self.key = SigningKey.generate()
        self.enclave_challenge = new_enclave_challenge(workdir)
        session_index = len(self.bundle.meta["sessions"])
        self.key_name = f"pox-run-{self.run_id}-s{session_index}"
        self._start_session(session_index)
        self.log = RunLog(self.bundle.path, self.bundle.meta["origin"], self.key_name, self.key)
        self.producers: dict[str, Producer] = {}
        self._earlier: dict[tuple[str, str], Producer] | None = None
        self._load_existing_records()
        self.source_digests: list[FileDigest] = []
        self.counts = {"succeeded": 0, "failed": 0}

    # -- bundle and session ------------------------------------------------------------------

    def _open_bundle(
        self, snakefile: str, meta: dict[str, Any], *, resume: bool
    ) -> tuple[RunBundle, WriterLock, bool]:
        if resume:
            for bundle, lock in find_resumable(self.workdir, snakefile):
                log.info("PoX: resuming interrupted run %s", bundle.run_id)
                bundle.meta.update({k: v for k, v in meta.items() if k not in bundle.meta})
                return bundle, lock, True
        bundle = RunBundle.create(self.workdir, {**meta, "snakefile": snakefile})
        lock = WriterLock(bundle.path)
        lock.try_acquire()
        return bundle, lock, False

    def _start_session(self, index: int) -> None:
        public_hex = self.key.public_key.hex()
        binding = Binding(
            nonce=secrets.token_hex(32),
            public_keys=(public_hex,),
            task_id=f"{self.run_id}/session/{index}",
            image_digest=self.runtime.image_digest(),
            enclave_challenge=self.enclave_challenge,
        )
        evidence = self.runtime.evidence(binding.report_data())
        self.bundle.meta["sessions"].append(
            {
                "index": index,
                "started": utc_now(),
                "backend": self.runtime.name,
                "builder_id": self.runtime.builder_id(),
                "isolation": self.runtime.describe_isolation(),
                "isolated": self.runtime.isolated,
                "key_name": self.key_name,
                "public_key": public_hex,
                "keyid": self.key.public_key.keyid,
                "vkey": vkey(self.key_name, self.key.public_key),
                "evidence": evidence.to_json(),
                "binding": binding.to_json(),
            }
        )
        self.bundle.meta["status"] = STATUS_RUNNING
        self.bundle.save()

    def _load_existing_records(self) -> None:
        """On resume, rebuild the producer map from the envelopes already in the log."""
        path = self.bundle.attestations_path
        if not path.exists():
            return
        for line, digest in zip(
            path.read_bytes().splitlines(), self.log.envelope_digests(), strict=False
        ):
            statement = _payload(line)
            if _status(statement) != "succeeded":
                continue
            for subject in statement.get("subject", []):
                sha = subject.get("digest", {}).get("sha256")
                if sha:
                    self.producers[subject["name"]] = Producer(self.run_id, digest, sha)

    def _earlier_producers(self) -> dict[tuple[str, str], Producer]:
        """(path, sha256) -> producer, over the other runs in this working directory."""
        if self._earlier is None:
            index: dict[tuple[str, str], Producer] = {}
            for bundle in list_runs(self.workdir):
                if bundle.run_id == self.run_id or not bundle.attestations_path.exists():
                    continue
                for line in bundle.attestations_path.read_bytes().splitlines():
                    try:
                        statement = _payload(line)
                    except ValueError:
                        continue
                    if _status(statement) != "succeeded":
                        continue
                    digest = sha256_bytes(line)
                    for subject in statement.get("subject", []):
                        sha = subject.get("digest", {}).get("sha256")
                        if sha:
                            index[(subject["name"], sha)] = Producer(bundle.run_id, digest, sha)
            self._earlier = index
        return self._earlier

    def record_sources(self, sources: Sequence[str], config: Mapping[str, Any]) -> None:
        """Hash the workflow sources and config once per session; store them in run.json."""
        # Names follow provenance.names: `external:/abs` for sources outside the workdir.
        existing = sorted({s for s in sources if local_path(s, self.workdir).is_file()})
        self.source_digests = [
            dataclasses.replace(d, path=s)
            for s in existing
            for d in self.hasher.digest_paths([str(local_path(s, self.workdir))], base=Path("/"))
        ]
        config_bytes = json.dumps(config, sort_keys=True, default=str).encode("utf-8")
        with self._lock:
            self.bundle.meta["workflow_sources"] = [
                {"path": d.path, "sha256": d.sha256} for d in self.source_digests
            ]
            self.bundle.meta["config_sha256"] = sha256_bytes(config_bytes)
            self.bundle.save()

    # -- records -----------------------------------------------------------------------------

    def hash_inputs(self, facts: JobFacts) -> list[FileDigest]:
        present = [p for p in facts.inputs if (self.workdir / p).exists()]
        return self.hasher.digest_paths(present, base=self.workdir)

    def record(
        self,
        facts: JobFacts,
        outcome: RunOutcome,
        *,
        input_digests: Sequence[FileDigest],
        invocation_id: str,
        job_log: Path,
    ) -> str:
        """Build, attest, sign and append the statement of one attempt; return its digest."""
        succeeded = outcome.exit_code == 0
        present_outputs = [o for o in facts.outputs if (self.workdir / o.path).exists()]
        output_digests = self.hasher.digest_paths(
            [o.path for o in present_outputs], base=self.workdir
        )
        flags = {o.path: o for o in facts.outputs}
        subjects = [
            Resource(
                name=d.path,
                sha256=d.sha256,
                annotations=_output_annotations(flags[d.path], d),
            )
            for d in output_digests
        ]
        log_bytes = job_log.read_bytes() if job_log.exists() else b""
        log_name = job_log.relative_to(self.workdir).as_posix()
        if not subjects:
            subjects = [Resource(name=log_name, sha256=sha256_bytes(log_bytes))]
        dependencies = self._dependencies(facts, input_digests)
        task_id = "0x" + sha256_bytes(f"{self.run_id}/{facts.jobid}/{facts.attempt}".encode())
        binding = Binding(
            nonce=secrets.token_hex(32),
            public_keys=(self.key.public_key.hex(),),
            task_id=task_id,
            image_digest=self.runtime.image_digest(),
            enclave_challenge=self.enclave_challenge,
        )
        evidence = self.runtime.evidence(binding.report_data())
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
            builder_id=self.runtime.builder_id(),
            isolated=outcome.isolated,
            isolation=outcome.isolation,
            discarded_writes=outcome.discarded_writes,
        )
        byproducts = [
            Resource(name=log_name, sha256=sha256_bytes(log_bytes), media_type=LOG_MEDIA_TYPE),
            evidence_byproduct(evidence, binding),
        ]
        statement = build_statement(
            job, subjects=subjects, dependencies=dependencies, byproducts=byproducts
        )
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
        line = serialize_envelope(sign_envelope(payload, self.key))
        _, digest = self.log.append(line)
        with self._lock:
            self.counts["succeeded" if succeeded else "failed"] += 1
            if succeeded:
                for d in output_digests:
                    self.producers[d.path] = Producer(self.run_id, digest, d.sha256)
        return digest

    def _dependencies(self, facts: JobFacts, inputs: Sequence[FileDigest]) -> list[Resource]:
        deps: list[Resource] = []
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
        for src in self.source_digests:
            deps.append(
                Resource(name=src.path, sha256=src.sha256, annotations={"pox.kind": KIND_SOURCE})
            )
        deps.extend(self._environment(facts))
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
        for path in (facts.script, *facts.extra_code):
            if path is None:
                continue
            full = self.workdir / path
            if full.is_file():
                digest = self.hasher.digest_one(path, base=self.workdir)
                code.append(
                    Resource(name=path, sha256=digest.sha256, annotations={"pox.kind": KIND_CODE})
                )
            else:
                code.append(
                    Resource(name=path, annotations={"pox.kind": KIND_CODE, "pox.missing": True})
                )
        return code

    def _environment(self, facts: JobFacts) -> list[Resource]:
        env = [
            Resource(
                name="pox:environment/image",
                sha256=self.runtime.image_digest().removeprefix("sha256:"),
                annotations={"pox.kind": KIND_ENVIRONMENT, "backend": self.runtime.name},
            )
        ]
        if facts.conda_env:
            full = self.workdir / facts.conda_env
            annotations: dict[str, Any] = {"pox.kind": KIND_ENVIRONMENT, "conda": facts.conda_env}
            sha = (
                self.hasher.digest_one(facts.conda_env, base=self.workdir).sha256
                if (full.is_file())
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

    # -- end of run --------------------------------------------------------------------------

    def finish(self, status: str, dag_edges: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.bundle.meta["status"] = status
            self.bundle.meta["finished"] = utc_now()
            self.bundle.meta["dag_edges"] = list(dag_edges)
            self.bundle.meta["tree_size"] = self.log.size
            self.bundle.meta["root_sha256"] = self.log.root().hex()
            self.bundle.save()
        self.log.write_checkpoint()
        self.hasher.cache.close()
        self._writer_lock.release()


ENCLAVE_KEYS_DIR = "enclave-keys"


def new_enclave_challenge(workdir: Path) -> str:
    """A fresh PoCo enclave challenge key for this session; returns its address.

    Until the SMS releases challenge keys to attested enclaves, the enclave runtime's host
    generates it here and keeps it in `.pox/enclave-keys/<address>.key` (mode 0600, outside the
    bundle) so that `pox anchor` can still sign results after a crash. Never printed.
    """
    from eth_account import Account

    account = Account.create()
    directory = workdir / ".pox" / ENCLAVE_KEYS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{account.address}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(bytes(account.key).hex() + "\n")
    return str(account.address)


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


def _payload(line: bytes) -> dict[str, Any]:
    envelope = json.loads(line)
    result: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return result


def _status(statement: Mapping[str, Any]) -> str | None:
    internal = statement.get("predicate", {}).get("buildDefinition", {})
    value = internal.get("internalParameters", {}).get("status")
    return str(value) if value is not None else None
