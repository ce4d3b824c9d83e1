"""Job statements: in-toto Statement v1 with the SLSA Provenance v1 predicate, built and parsed.

One statement per job attempt. `subject` lists the job's outputs (path relative to the working
directory, sha256); a failed attempt with no outputs names its captured log instead.
`resolvedDependencies` lists every input file, the code (shell command, script, Snakefile
sources), the environment, and the envelope digests of the parent jobs (the Merkle DAG links);
each entry says what it is in `annotations["pox.kind"]`. `byproducts` carry the captured log and
the TEE evidence with the binding document its report data commits to.

Each session of a run also writes two statements into the same log (`build_session_open`,
`build_session_close`; predicate types `https://pox.dev/session-open/v1` and
`https://pox.dev/session-close/v1`): its opening carries the session's public key with the TEE
evidence binding it, its closing the log size and run status; see docs/formats.md. Reading any
of them back is `records.py`'s job.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from pox_executor.enclave.evidence import Evidence
from pox_executor.errors import VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
SESSION_OPEN_TYPE = "https://pox.dev/session-open/v1"
SESSION_CLOSE_TYPE = "https://pox.dev/session-close/v1"
BUILD_TYPE = "https://pox.dev/buildtypes/snakemake-job/v1"
EVIDENCE_MEDIA_TYPE = "application/vnd.pox.tee-evidence+json"
LOG_MEDIA_TYPE = "text/plain"

KIND_INPUT = "input"
KIND_CODE = "code"
KIND_SOURCE = "workflow-source"
KIND_ENVIRONMENT = "environment"
KIND_PARENT = "parent-envelope"
KINDS = (KIND_INPUT, KIND_CODE, KIND_SOURCE, KIND_ENVIRONMENT, KIND_PARENT)


@dataclass(frozen=True)
class Resource:
    """An in-toto ResourceDescriptor reduced to what PoX records."""

    name: str
    sha256: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    media_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.sha256 is not None:
            out["digest"] = {"sha256": self.sha256}
        if self.content is not None:
            out["content"] = base64.b64encode(self.content).decode("ascii")
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Binding:
    """The document whose SHA-512 is the evidence's report data.

    `enclave_challenge` (optional, PoX chain extension): the address of the enclave's PoCo
    challenge key (`0x` + 40 hex), the key that signs the job's result on chain; the evidence then
    vouches for it as for the statement-signing keys. Absent in bundles recorded before it.
    """

    nonce: str
    public_keys: tuple[str, ...]
    task_id: str
    image_digest: str
    enclave_challenge: str | None = None

    @classmethod
    def from_json(cls, raw: Any, *, where: str) -> Binding:
        keys = require_field(raw, "public_keys", list, where)
        if not all(isinstance(k, str) for k in keys):
            raise VerificationError(f"{where}: public_keys must be hex strings")
        return cls(
            nonce=require_field(raw, "nonce", str, where),
            public_keys=tuple(keys),
            task_id=require_field(raw, "task_id", str, where),
            image_digest=require_field(raw, "image_digest", str, where),
            enclave_challenge=_optional_address(raw, where),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nonce": self.nonce,
            "public_keys": list(self.public_keys),
            "task_id": self.task_id,
            "image_digest": self.image_digest,
        }
        if self.enclave_challenge is not None:
            out["enclave_challenge"] = self.enclave_challenge
        return out

    def report_data(self) -> bytes:
        """SHA-512 of the RFC 8785 canonical JSON of this binding: the evidence's report data."""
        return hashlib.sha512(rfc8785.dumps(self.to_json())).digest()


def _optional_address(raw: Any, where: str) -> str | None:
    value = raw.get("enclave_challenge") if isinstance(raw, Mapping) else None
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise VerificationError(f"{where}: enclave_challenge must be a 0x-prefixed address")
    return value


@dataclass(frozen=True)
class JobRun:
    """The facts of one job attempt that go into its statement."""

    run_id: str
    jobid: int
    rule: str
    attempt: int
    status: str  # "succeeded" | "failed"
    exit_code: int
    invocation_id: str
    started_on: str
    finished_on: str
    wildcards: Mapping[str, str]
    params: Mapping[str, Any]
    threads: int
    resources: Mapping[str, Any]
    backend: str
    builder_id: str
    isolated: bool
    isolation: str
    discarded_writes: Sequence[str] = ()
    missing_outputs: Sequence[str] = ()
    environment_names: Sequence[str] = ()


def build_statement(
    job: JobRun,
    *,
    subjects: Sequence[Resource],
    dependencies: Sequence[Resource],
    byproducts: Sequence[Resource],
) -> dict[str, Any]:
    if not subjects:
        raise ValueError("an in-toto statement needs at least one subject")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [s.to_json() for s in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "rule": job.rule,
                    "wildcards": dict(job.wildcards),
                    "params": _jsonable(job.params),
                    "threads": job.threads,
                    "resources": _jsonable(job.resources),
                },
                "internalParameters": {
                    "run_id": job.run_id,
                    "jobid": job.jobid,
                    "attempt": job.attempt,
                    "status": job.status,
                    "exit_code": job.exit_code,
                    "backend": job.backend,
                    "isolated": job.isolated,
                    "isolation": job.isolation,
                    "discarded_writes": list(job.discarded_writes),
                    "missing_outputs": list(job.missing_outputs),
                    "environment_names": list(job.environment_names),
                },
                "resolvedDependencies": [d.to_json() for d in dependencies],
            },
            "runDetails": {
                "builder": {"id": job.builder_id},
                "metadata": {
                    "invocationId": job.invocation_id,
                    "startedOn": job.started_on,
                    "finishedOn": job.finished_on,
                },
                "byproducts": [b.to_json() for b in byproducts],
            },
        },
    }


def _jsonable(value: Any) -> Any:
    """Snakemake params and resources may hold arbitrary objects: keep JSON, stringify the rest."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def evidence_byproduct(evidence: Evidence, binding: Binding) -> Resource:
    return Resource(
        name="pox:tee-evidence",
        media_type=EVIDENCE_MEDIA_TYPE,
        annotations={"evidence": evidence.to_json(), "binding": binding.to_json()},
    )


# --- session entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionOpening:
    """What a session signs when it opens: its key, the evidence binding it, and the settings."""

    run_id: str
    origin: str
    session: int
    key_name: str
    public_key: str  # hex
    evidence: Evidence
    binding: Binding
    backend: str
    builder_id: str
    isolation: str
    isolated: bool
    workflow_sources: Sequence[Resource]
    config_sha256: str | None
    snakemake_version: str
    pox_version: str
    settings: Mapping[str, Any]
    requester: str | None
    started: str
    continues: tuple[int, str] | None  # (size, hex root) of the log a resumed session extends
    # `snakemake --config` overrides in their recorded form (provenance/config_overrides.py);
    # None leaves the field out, as sessions recorded before it did.
    config_overrides: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class SessionClosing:
    """What a session signs when it ends: the log size before the close, status and counts."""

    run_id: str
    session: int
    size: int
    status: str
    succeeded: int
    failed: int
    finished: str


def session_subject(run_id: str, session: int, public_key_hex: str) -> Resource:
    return Resource(
        name=f"pox:run/{run_id}/session/{session}",
        sha256=hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest(),
    )


def build_session_open(opening: SessionOpening) -> dict[str, Any]:
    continues = None
    if opening.continues is not None:
        continues = {"size": opening.continues[0], "root": opening.continues[1]}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [session_subject(opening.run_id, opening.session, opening.public_key).to_json()],
        "predicateType": SESSION_OPEN_TYPE,
        "predicate": {
            "run_id": opening.run_id,
            "origin": opening.origin,
            "session": opening.session,
            "key_name": opening.key_name,
            "public_key": opening.public_key,
            "evidence": opening.evidence.to_json(),
            "binding": opening.binding.to_json(),
            "backend": opening.backend,
            "builder_id": opening.builder_id,
            "isolation": opening.isolation,
            "isolated": opening.isolated,
            "workflow_sources": [r.to_json() for r in opening.workflow_sources],
            "config_sha256": opening.config_sha256,
            "snakemake_version": opening.snakemake_version,
            "pox_version": opening.pox_version,
            "settings": _jsonable(opening.settings),
            "requester": opening.requester,
            "started": opening.started,
            "continues": continues,
            **(
                {"config_overrides": _jsonable(opening.config_overrides)}
                if opening.config_overrides is not None
                else {}
            ),
        },
    }


def build_session_close(closing: SessionClosing) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"pox:run/{closing.run_id}/session/{closing.session}/close"}],
        "predicateType": SESSION_CLOSE_TYPE,
        "predicate": {
            "run_id": closing.run_id,
            "session": closing.session,
            "size": closing.size,
            "status": closing.status,
            "succeeded": closing.succeeded,
            "failed": closing.failed,
            "finished": closing.finished,
        },
    }


# --- field access shared with the reader (records.py) -----------------------------------------


def require_field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`obj[key]` checked to be of `kind`; VerificationError names the field otherwise."""
    if not isinstance(obj, Mapping) or key not in obj:
        raise VerificationError(f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VerificationError(f"{where}: field '{key}' has the wrong type")
    return value


def parse_resource(raw: Any, where: str) -> Resource:
    """A ResourceDescriptor as PoX writes it (name, optional sha256 digest, annotations)."""
    name = require_field(raw, "name", str, where)
    sha = None
    if "digest" in raw:
        digest = require_field(raw, "digest", dict, where)
        sha = require_field(digest, "sha256", str, f"{where}.digest")
    annotations = raw.get("annotations", {})
    if not isinstance(annotations, Mapping):
        raise VerificationError(f"{where}: 'annotations' must be an object")
    return Resource(name=name, sha256=sha, annotations=dict(annotations))
