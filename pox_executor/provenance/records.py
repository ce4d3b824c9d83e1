"""The one reader of run-log entries: a line of `attestations.intoto.jsonl` -> a typed entry.

Every line of a run log is a DSSE envelope around an in-toto Statement v1. Its predicate type
says which of three entries it is:

- `https://pox.dev/session-open/v1` -> `SessionOpen`: a writer session begins; it introduces the
  session's public key and the TEE evidence binding it (task id `<run-id>/session/<i>`);
- `https://slsa.dev/provenance/v1` -> `JobRecord`: one job attempt;
- `https://pox.dev/session-close/v1` -> `SessionClose`: the session ends with the run's status.

`parse_payload` is strict (every field checked, errors name the line and field); the verifier
calls it on payloads whose signature it has checked. `decode_line` and `read_entries` read
without checking signatures, for the recorder's resume, `pox show` and `pox prove`;
`read_entries(strict=False)` skips lines it cannot read. Lines longer than
`MAX_LINE_BYTES` (4 MiB) are an error, as is JSON nested deeper than `MAX_JSON_DEPTH` (200).

This module reads; the statements are built in `statement.py`, lines are written by `log.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pox_executor.enclave.evidence import Evidence
from pox_executor.errors import BundleError, PoxError, VerificationError
from pox_executor.primitives import sha256_bytes
from pox_executor.provenance._base64 import b64decode_strict
from pox_executor.provenance.config_overrides import parse_recorded
from pox_executor.provenance.dsse import envelope_digest
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.log import MAX_LINE_BYTES, read_log_lines
from pox_executor.provenance.statement import (
    KIND_PARENT,
    PREDICATE_TYPE,
    SESSION_CLOSE_TYPE,
    SESSION_OPEN_TYPE,
    STATEMENT_TYPE,
    Binding,
    Resource,
    SessionClosing,
    parse_resource,
    require_field,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_LINE_BYTES",
    "JobRecord",
    "LogEntry",
    "SessionClose",
    "SessionOpen",
    "decode_line",
    "job_task_id",
    "load_json",
    "parse_payload",
    "read_entries",
    "session_task_id",
    "signed_requester",
]


def job_task_id(run_id: str, jobid: int, attempt: int) -> str:
    """The binding task id of one job attempt: `0x` + SHA-256 of `<run-id>/<jobid>/<attempt>`."""
    return "0x" + sha256_bytes(f"{run_id}/{jobid}/{attempt}".encode())


def session_task_id(run_id: str, session: int) -> str:
    """The binding task id of a session's opening: `<run-id>/session/<i>`."""
    return f"{run_id}/session/{session}"


MAX_JSON_DEPTH = 200
# A JSON string, written as the "unrolled loop" (runs of plain bytes, then one escape): the
# engine then moves a run at a time instead of trying an alternation at every byte.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit` (strings are skipped).

    Checked before parsing: CPython's parser can exhaust the C stack on deep nesting.
    """
    # Nesting depth never exceeds the number of opening brackets in the text (those inside
    # strings included), so text with few of them needs no scan at all: two C-speed counts.
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    depth = 0
    for byte in brackets:
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > limit:
            return True
    return False


def load_json(data: bytes | str, *, where: str) -> Any:
    """json.loads that turns every failure (syntax, bad UTF-8, nesting deeper than
    MAX_JSON_DEPTH) into VerificationError naming `where`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if json_depth_exceeds(raw):
        raise VerificationError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except RecursionError:
        raise VerificationError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise VerificationError(f"{where}: not valid JSON ({exc})") from exc


@dataclass(frozen=True)
class JobRecord:
    """One job attempt as its statement states it."""

    line_no: int
    digest: str  # envelope digest, what children and the chain cite
    statement: Mapping[str, Any]
    run_id: str
    rule: str
    jobid: int
    attempt: int
    status: str  # "succeeded" | "failed"
    exit_code: int
    invocation_id: str
    builder_id: str
    isolated: bool
    isolation: str
    wildcards: Mapping[str, Any]
    subjects: tuple[Resource, ...]
    dependencies: tuple[Resource, ...]
    evidence: Evidence
    binding: Binding
    finished_on: str | None
    missing_outputs: tuple[str, ...]
    discarded_writes: tuple[str, ...]

    kind = "job"

    @property
    def task_id(self) -> str:
        """The binding's task id (see `job_task_id`), not a PoCo task id."""
        return self.binding.task_id

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def parents(self) -> list[str]:
        return [d.sha256 for d in self.dependencies_of_kind(KIND_PARENT) if d.sha256]

    @property
    def where(self) -> str:
        return f"line {self.line_no}, job {self.jobid} ({self.rule}) attempt {self.attempt}"

    def dependencies_of_kind(self, kind: str) -> list[Resource]:
        return [d for d in self.dependencies if d.annotations.get("pox.kind") == kind]


@dataclass(frozen=True)
class SessionOpen:
    """A writer session's opening: the key it signs with and the evidence binding that key."""

    line_no: int
    digest: str
    run_id: str
    origin: str
    session: int
    key_name: str
    public_key: PublicKey
    evidence: Evidence
    binding: Binding
    backend: str
    builder_id: str
    isolation: str
    isolated: bool
    workflow_sources: tuple[Resource, ...]
    config_sha256: str | None
    snakemake_version: str
    pox_version: str
    settings: Mapping[str, Any]
    requester: str | None
    started: str
    continues: tuple[int, str] | None  # (size, hex root) of the log this session extends
    # `--config` overrides as recorded (provenance/config_overrides.py); None: not recorded
    config_overrides: Mapping[str, Mapping[str, Any]] | None = None

    kind = "session-open"

    @property
    def where(self) -> str:
        return f"line {self.line_no}, session {self.session} opening"


@dataclass(frozen=True)
class SessionClose(SessionClosing):
    """A writer session's closing as read from the log: what it signed, and where it stands."""

    line_no: int
    digest: str

    kind = "session-close"

    @property
    def where(self) -> str:
        return f"line {self.line_no}, session {self.session} closing"


LogEntry = JobRecord | SessionOpen | SessionClose


def parse_payload(payload: bytes, *, line_no: int, digest: str) -> LogEntry:
    """The typed entry of one statement payload; VerificationError names line and field."""
    where = f"line {line_no}"
    st = load_json(payload, where=f"{where} payload")
    if require_field(st, "_type", str, where) != STATEMENT_TYPE:
        raise VerificationError(f"{where}: _type is not {STATEMENT_TYPE}")
    predicate_type = require_field(st, "predicateType", str, where)
    if predicate_type == PREDICATE_TYPE:
        return _job(st, line_no, digest)
    if predicate_type == SESSION_OPEN_TYPE:
        return _session_open(st, line_no, digest)
    if predicate_type == SESSION_CLOSE_TYPE:
        return _session_close(st, line_no, digest)
    raise VerificationError(
        f"{where}: predicateType {predicate_type!r} is none of {PREDICATE_TYPE}, "
        f"{SESSION_OPEN_TYPE}, {SESSION_CLOSE_TYPE}"
    )


def decode_line(line: bytes, *, line_no: int) -> tuple[Mapping[str, Any], LogEntry]:
    """The envelope and entry of a log line, WITHOUT checking the signature (never for trust)."""
    envelope = load_json(line, where=f"line {line_no}")
    if not isinstance(envelope, Mapping):
        raise VerificationError(f"line {line_no}: not a DSSE envelope object")
    encoded: Any = envelope.get("payload")
    payload = b64decode_strict(encoded, where=f"line {line_no} field 'payload'")
    return envelope, parse_payload(payload, line_no=line_no, digest=envelope_digest(line))


def read_entries(path: Path, *, strict: bool = True) -> list[LogEntry]:
    """Every entry of a log file, unverified. Strict: BundleError on the first unreadable line;
    lenient (for display): unreadable lines are skipped. A torn last line is never an entry."""
    entries: list[LogEntry] = []
    for index, line in enumerate(read_log_lines(path).lines):
        try:
            entries.append(decode_line(line, line_no=index + 1)[1])
        except PoxError as exc:
            if strict:
                raise BundleError(f"{path}: {exc}") from exc
    return entries


def signed_requester(entries: Sequence[LogEntry]) -> str | None:
    """The chain account that may anchor the run, as the run's first session-open states it.

    Meaningful only for entries whose signatures were verified (`verify_run` does, and reports a
    session whose requester differs from the first one's).
    """
    for entry in entries:
        if isinstance(entry, SessionOpen):
            return entry.requester
    return None


# --- the three entry types ---------------------------------------------------------------------


def _evidence_and_binding(raw: Any, where: str) -> tuple[Evidence, Binding]:
    evidence = Evidence.from_json(raw.get("evidence"), where=f"{where}.evidence")
    binding = Binding.from_json(
        require_field(raw, "binding", dict, where), where=f"{where}.binding"
    )
    return evidence, binding


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise VerificationError(f"{where}: expected a list of strings")
    return tuple(raw)


def _job(st: Mapping[str, Any], line_no: int, digest: str) -> JobRecord:
    where = f"line {line_no}"
    subjects = tuple(
        parse_resource(s, f"{where}.subject[{i}]")
        for i, s in enumerate(require_field(st, "subject", list, where))
    )
    if not subjects:
        raise VerificationError(f"{where}: subject list is empty")
    pred = require_field(st, "predicate", dict, where)
    build = require_field(pred, "buildDefinition", dict, f"{where}.predicate")
    ext = require_field(build, "externalParameters", dict, f"{where}.buildDefinition")
    internal = require_field(build, "internalParameters", dict, f"{where}.buildDefinition")
    at = f"{where}.internalParameters"
    deps = tuple(
        parse_resource(d, f"{where}.resolvedDependencies[{i}]")
        for i, d in enumerate(require_field(build, "resolvedDependencies", list, where))
    )
    details = require_field(pred, "runDetails", dict, f"{where}.predicate")
    builder = require_field(
        require_field(details, "builder", dict, where), "id", str, f"{where}.builder"
    )
    meta = require_field(details, "metadata", dict, f"{where}.runDetails")
    evidence_raw = None
    for i, b in enumerate(require_field(details, "byproducts", list, f"{where}.runDetails")):
        if isinstance(b, Mapping) and b.get("name") == "pox:tee-evidence":
            evidence_raw = require_field(b, "annotations", dict, f"{where}.byproducts[{i}]")
    if evidence_raw is None:
        raise VerificationError(f"{where}: no TEE evidence among the byproducts")
    evidence, binding = _evidence_and_binding(evidence_raw, where)
    finished = meta.get("finishedOn")
    wildcards = ext.get("wildcards", {})
    if not isinstance(wildcards, Mapping):
        raise VerificationError(f"{where}.externalParameters: field 'wildcards' must be an object")
    status = require_field(internal, "status", str, at)
    if status not in ("succeeded", "failed"):
        raise VerificationError(f"{at}: field 'status' must be 'succeeded' or 'failed'")
    return JobRecord(
        line_no=line_no,
        digest=digest,
        statement=st,
        run_id=require_field(internal, "run_id", str, at),
        rule=require_field(ext, "rule", str, f"{where}.externalParameters"),
        jobid=require_field(internal, "jobid", int, at),
        attempt=require_field(internal, "attempt", int, at),
        status=status,
        exit_code=require_field(internal, "exit_code", int, at),
        invocation_id=require_field(meta, "invocationId", str, f"{where}.metadata"),
        builder_id=builder,
        isolated=require_field(internal, "isolated", bool, at),
        isolation=str(internal.get("isolation", "")),
        wildcards=dict(wildcards),
        subjects=subjects,
        dependencies=deps,
        evidence=evidence,
        binding=binding,
        finished_on=finished if isinstance(finished, str) else None,
        missing_outputs=_strings(internal.get("missing_outputs", []), f"{at}.missing_outputs"),
        discarded_writes=_strings(internal.get("discarded_writes", []), f"{at}.discarded_writes"),
    )


def _session_open(st: Mapping[str, Any], line_no: int, digest: str) -> SessionOpen:
    where = f"line {line_no}.predicate"
    p = require_field(st, "predicate", dict, f"line {line_no}")
    evidence, binding = _evidence_and_binding(p, where)
    continues_raw = p.get("continues")
    continues = None
    if continues_raw is not None:
        continues = (
            require_field(continues_raw, "size", int, f"{where}.continues"),
            require_field(continues_raw, "root", str, f"{where}.continues"),
        )
    requester = p.get("requester")
    if requester is not None and not isinstance(requester, str):
        raise VerificationError(f"{where}: field 'requester' must be an address or null")
    config = p.get("config_sha256")
    if config is not None and not isinstance(config, str):
        raise VerificationError(f"{where}: field 'config_sha256' must be a string or null")
    session = require_field(p, "session", int, where)
    if session < 0:
        raise VerificationError(f"{where}: field 'session' must not be negative")
    return SessionOpen(
        line_no=line_no,
        digest=digest,
        run_id=require_field(p, "run_id", str, where),
        origin=require_field(p, "origin", str, where),
        session=session,
        key_name=require_field(p, "key_name", str, where),
        public_key=PublicKey.from_hex(require_field(p, "public_key", str, where)),
        evidence=evidence,
        binding=binding,
        backend=require_field(p, "backend", str, where),
        builder_id=require_field(p, "builder_id", str, where),
        isolation=require_field(p, "isolation", str, where),
        isolated=require_field(p, "isolated", bool, where),
        workflow_sources=tuple(
            parse_resource(r, f"{where}.workflow_sources[{i}]")
            for i, r in enumerate(require_field(p, "workflow_sources", list, where))
        ),
        config_sha256=config,
        snakemake_version=require_field(p, "snakemake_version", str, where),
        pox_version=require_field(p, "pox_version", str, where),
        settings=dict(require_field(p, "settings", dict, where)),
        requester=requester,
        started=require_field(p, "started", str, where),
        continues=continues,
        config_overrides=parse_recorded(p.get("config_overrides"), where=where),
    )


def _session_close(st: Mapping[str, Any], line_no: int, digest: str) -> SessionClose:
    where = f"line {line_no}.predicate"
    p = require_field(st, "predicate", dict, f"line {line_no}")
    return SessionClose(
        line_no=line_no,
        digest=digest,
        run_id=require_field(p, "run_id", str, where),
        session=require_field(p, "session", int, where),
        size=require_field(p, "size", int, where),
        status=require_field(p, "status", str, where),
        succeeded=require_field(p, "succeeded", int, where),
        failed=require_field(p, "failed", int, where),
        finished=require_field(p, "finished", str, where),
    )
