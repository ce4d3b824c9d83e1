"""Job statements: in-toto Statement v1 with the SLSA Provenance v1 predicate, built and parsed.

One statement per job attempt. `subject` lists the job's outputs (path relative to the working
directory, sha256); a failed attempt with no outputs names its captured log instead.
`resolvedDependencies` lists every input file, the code (shell command, script, Snakefile
sources), the environment, and the envelope digests of the parent jobs (the Merkle DAG links);
each entry says what it is in `annotations["pox.kind"]`. `byproducts` carry the captured log and
the TEE evidence with the binding document its report data commits to.

`parse_statement` is the strict reader the verifier uses; it names the field that is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from pox_executor.enclave.evidence import Evidence
from pox_executor.errors import VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
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
        keys = _field(raw, "public_keys", list, where)
        if not all(isinstance(k, str) for k in keys):
            raise VerificationError(f"{where}: public_keys must be hex strings")
        return cls(
            nonce=_field(raw, "nonce", str, where),
            public_keys=tuple(keys),
            task_id=_field(raw, "task_id", str, where),
            image_digest=_field(raw, "image_digest", str, where),
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


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedJob:
    """A statement as the verifier sees it."""

    statement: Mapping[str, Any]
    rule: str
    jobid: int
    attempt: int
    status: str
    invocation_id: str
    builder_id: str
    isolated: bool
    subjects: tuple[Resource, ...]
    dependencies: tuple[Resource, ...]
    evidence: Evidence
    binding: Binding

    def dependencies_of_kind(self, kind: str) -> list[Resource]:
        return [d for d in self.dependencies if d.annotations.get("pox.kind") == kind]


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise VerificationError(f"{where}: missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind):
        raise VerificationError(f"{where}: field '{key}' has the wrong type")
    return value


def _resource(raw: Any, where: str) -> Resource:
    name = _field(raw, "name", str, where)
    sha = None
    if "digest" in raw:
        sha = _field(_field(raw, "digest", dict, where), "sha256", str, f"{where}.digest")
    annotations = raw.get("annotations", {})
    if not isinstance(annotations, Mapping):
        raise VerificationError(f"{where}: 'annotations' must be an object")
    return Resource(name=name, sha256=sha, annotations=dict(annotations))


def parse_statement(payload: bytes, *, where: str) -> ParsedJob:
    try:
        st = json.loads(payload)
    except ValueError as exc:
        raise VerificationError(f"{where}: payload is not JSON ({exc})") from exc
    if _field(st, "_type", str, where) != STATEMENT_TYPE:
        raise VerificationError(f"{where}: _type is not {STATEMENT_TYPE}")
    if _field(st, "predicateType", str, where) != PREDICATE_TYPE:
        raise VerificationError(f"{where}: predicateType is not {PREDICATE_TYPE}")
    subjects = tuple(
        _resource(s, f"{where}.subject[{i}]")
        for i, s in enumerate(_field(st, "subject", list, where))
    )
    if not subjects:
        raise VerificationError(f"{where}: subject list is empty")
    pred = _field(st, "predicate", dict, where)
    build = _field(pred, "buildDefinition", dict, f"{where}.predicate")
    ext = _field(build, "externalParameters", dict, f"{where}.buildDefinition")
    internal = _field(build, "internalParameters", dict, f"{where}.buildDefinition")
    deps = tuple(
        _resource(d, f"{where}.resolvedDependencies[{i}]")
        for i, d in enumerate(_field(build, "resolvedDependencies", list, f"{where}"))
    )
    details = _field(pred, "runDetails", dict, f"{where}.predicate")
    builder = _field(_field(details, "builder", dict, where), "id", str, f"{where}.builder")
    meta = _field(details, "metadata", dict, f"{where}.runDetails")
    evidence_raw = None
    for i, b in enumerate(_field(details, "byproducts", list, f"{where}.runDetails")):
        if isinstance(b, Mapping) and b.get("name") == "pox:tee-evidence":
            evidence_raw = _field(b, "annotations", dict, f"{where}.byproducts[{i}]")
    if evidence_raw is None:
        raise VerificationError(f"{where}: no TEE evidence among the byproducts")
    evidence = Evidence.from_json(evidence_raw.get("evidence"), where=f"{where}.evidence")
    binding = Binding.from_json(
        _field(evidence_raw, "binding", dict, f"{where}.evidence"), where=f"{where}.binding"
    )
    return ParsedJob(
        statement=st,
        rule=_field(ext, "rule", str, f"{where}.externalParameters"),
        jobid=_field(internal, "jobid", int, f"{where}.internalParameters"),
        attempt=_field(internal, "attempt", int, f"{where}.internalParameters"),
        status=_field(internal, "status", str, f"{where}.internalParameters"),
        invocation_id=_field(meta, "invocationId", str, f"{where}.metadata"),
        builder_id=builder,
        isolated=_field(internal, "isolated", bool, f"{where}.internalParameters"),
        subjects=subjects,
        dependencies=deps,
        evidence=evidence,
        binding=binding,
    )
