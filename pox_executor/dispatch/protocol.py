"""The data the head and a node exchange: the job ticket (head -> node) and the submission
(node -> head), their JSON forms and the spool directory on the shared filesystem.

A *ticket* (`pox-job-ticket/v1`) is everything `pox jobstep` needs to run one Snakemake job the
way the head would have run it locally: the job reduced to plain data (`JobFacts`), the runtime's
`JobSpec`, the producers of its inputs known to the head (so the node can link parent envelopes),
the session's workflow sources and enclave challenge, and where to deliver the result. The ticket
carries no secret the node could misuse: the collector token only lets a sender offer statements,
which the head checks one by one.

Enclave challenges: `enclave_challenge` is the session's (bound by every member when the head has
no key broker); `enclave_challenges` (absent in tickets written before it, read as empty) maps
each member's task id (`job_task_id(run, jobid, attempt)`) to the address of the challenge the
head's key broker (`--pox-sms`) made for that task: the node binds that one, and the collector
refuses any other.

A *submission* (`pox-submission/v1`) is what a node delivers: the id of the ticket it answers and
the signed envelope lines (one per member of a group job). Submissions are idempotent: the same id
sent twice is collected once (`collector`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.enclave.runtime import JobSpec, OutputSpec, exec_command
from pox_executor.errors import UsageError
from pox_executor.primitives import write_atomically
from pox_executor.provenance.digests import FileDigest
from pox_executor.provenance.recorder import JobFacts, OutputFile, Producer
from pox_executor.provenance.records import job_task_id

TICKET_FORMAT = "pox-job-ticket/v1"
SUBMISSION_FORMAT = "pox-submission/v1"
# A member's task id (the binding's) and a PoCo enclave challenge address.
_TASK_ID = re.compile(r"^0x[0-9a-f]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# A submission id names a spool file: keep it to a safe file name.
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# One submission holds at most this many envelopes and bytes (a group job's members).
MAX_SUBMISSION_ENVELOPES = 1024
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024


class ProtocolError(UsageError):
    """A ticket or submission is malformed (names the file or sender and the field)."""


@dataclass(frozen=True)
class Submission:
    """A node's answer to one ticket: the signed envelope lines of the job's attempt."""

    submission_id: str
    envelopes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_submission_id(self.submission_id)

    def to_json(self) -> bytes:
        body = {
            "format": SUBMISSION_FORMAT,
            "submission_id": self.submission_id,
            "envelopes": [e.decode("utf-8") for e in self.envelopes],
        }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> Submission:
        if len(data) > MAX_SUBMISSION_BYTES:
            raise ProtocolError(f"{where}: submission larger than {MAX_SUBMISSION_BYTES} bytes")
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{where}: submission is not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ProtocolError(f"{where}: submission must be a JSON object")
        if raw.get("format") != SUBMISSION_FORMAT:
            raise ProtocolError(
                f"{where}: field 'format' is {raw.get('format')!r}, expected {SUBMISSION_FORMAT!r}"
            )
        sid = raw.get("submission_id")
        if not isinstance(sid, str):
            raise ProtocolError(f"{where}: field 'submission_id' must be a string")
        envelopes = raw.get("envelopes")
        if (
            not isinstance(envelopes, list)
            or not envelopes
            or len(envelopes) > MAX_SUBMISSION_ENVELOPES
            or not all(isinstance(e, str) and e and "\n" not in e for e in envelopes)
        ):
            raise ProtocolError(
                f"{where}: field 'envelopes' must be a list of 1 to {MAX_SUBMISSION_ENVELOPES} "
                "envelope lines (strings without newlines)"
            )
        try:
            return cls(sid, tuple(e.encode("utf-8") for e in envelopes))
        except UsageError as exc:
            raise ProtocolError(f"{where}: {exc}") from None


def check_submission_id(submission_id: str) -> None:
    if not _SUBMISSION_ID.match(submission_id):
        raise ProtocolError(
            f"submission id {submission_id[:40]!r} is not a safe name "
            "(letters, digits, '.', '_', '-'; at most 128 characters)"
        )


# -- spool directory ---------------------------------------------------------------------------


def spool_path(spool_dir: Path, submission_id: str) -> Path:
    check_submission_id(submission_id)
    return spool_dir / f"{submission_id}.json"


def write_spool(spool_dir: Path, submission: Submission) -> Path:
    """Write a submission into the spool durably (atomic rename, fsynced); return its path."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_path(spool_dir, submission.submission_id)
    write_atomically(path, submission.to_json())
    return path


def read_spool(spool_dir: Path, submission_id: str) -> Submission | None:
    """The spooled submission answering `submission_id`, or None if the node left none."""
    path = spool_path(spool_dir, submission_id)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return Submission.from_json(data, where=str(path))


# -- job ticket --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """Everything a node needs to run, attest and sign one job attempt (or group)."""

    run_id: str
    members: tuple[JobFacts, ...]
    spec: JobSpec
    backend: str
    isolate: bool
    default_image: str | None
    shared_home: bool
    enclave_challenge: str | None
    sources: tuple[FileDigest, ...]
    producers: Mapping[str, Producer]
    spool_dir: Path
    collector_url: str | None = None
    collector_token: str | None = None
    script: Path | None = None  # a long shell command's script, removed after the job
    extra: Mapping[str, Any] = field(default_factory=dict)
    # task id -> the address of its broker-held enclave challenge (empty: no key broker)
    enclave_challenges: Mapping[str, str] = field(default_factory=dict)

    @property
    def submission_id(self) -> str:
        return self.spec.invocation_id

    def challenge_for(self, task_id: str) -> str | None:
        """The enclave challenge the member of task `task_id` must bind."""
        if not self.enclave_challenges:
            return self.enclave_challenge
        try:
            return self.enclave_challenges[task_id]
        except KeyError:
            raise ProtocolError(
                f"job ticket {self.submission_id}: field 'enclave_challenges' has no challenge "
                f"for task {task_id}"
            ) from None

    def to_json(self) -> bytes:
        spec = self.spec
        body = {
            "format": TICKET_FORMAT,
            "run_id": self.run_id,
            "members": [_facts_json(f) for f in self.members],
            "spec": {
                "invocation_id": spec.invocation_id,
                "command": spec.command,
                "argv": list(spec.argv),
                "workdir": str(spec.workdir),
                "outputs": [{"path": o.path, "is_directory": o.is_directory} for o in spec.outputs],
                "log_path": str(spec.log_path),
                "network": spec.network,
                "threads": spec.threads,
                "mem_mb": spec.mem_mb,
                "container": spec.container,
                "env": dict(spec.env),
                "env_passthrough": list(spec.env_passthrough),
                "readable": list(spec.readable),
            },
            "backend": self.backend,
            "isolate": self.isolate,
            "default_image": self.default_image,
            "shared_home": self.shared_home,
            "enclave_challenge": self.enclave_challenge,
            "enclave_challenges": dict(sorted(self.enclave_challenges.items())),
            "sources": [
                {"path": s.path, "sha256": s.sha256, "size_bytes": s.size_bytes}
                for s in self.sources
            ],
            "producers": {
                name: {"run_id": p.run_id, "envelope": p.envelope, "sha256": p.sha256}
                for name, p in sorted(self.producers.items())
            },
            "spool_dir": str(self.spool_dir),
            "collector_url": self.collector_url,
            "collector_token": self.collector_token,
            "script": str(self.script) if self.script else None,
            "extra": dict(self.extra),
        }
        return json.dumps(body, sort_keys=True, default=str).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> Ticket:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{where}: job ticket is not JSON ({exc})") from None
        reader = _Fields(raw, where)
        if reader.get("format", str) != TICKET_FORMAT:
            raise ProtocolError(f"{where}: field 'format' must be {TICKET_FORMAT!r}")
        spec = _Fields(reader.get("spec", dict), f"{where}: spec")
        challenges = _challenges_from(reader, where)
        try:
            ticket = cls(
                run_id=reader.get("run_id", str),
                members=tuple(
                    _facts_from(m, f"{where}: members[{i}]")
                    for i, m in enumerate(reader.get("members", list))
                ),
                spec=JobSpec(
                    invocation_id=spec.get("invocation_id", str),
                    command=spec.get("command", str),
                    argv=tuple(spec.optional("argv", list) or ()),
                    workdir=Path(spec.get("workdir", str)),
                    outputs=tuple(
                        OutputSpec(path=str(o["path"]), is_directory=bool(o["is_directory"]))
                        for o in spec.get("outputs", list)
                    ),
                    log_path=Path(spec.get("log_path", str)),
                    network=spec.get("network", bool),
                    threads=spec.get("threads", int),
                    mem_mb=spec.optional("mem_mb", int),
                    container=spec.optional("container", str),
                    env={str(k): str(v) for k, v in spec.get("env", dict).items()},
                    env_passthrough=tuple(str(n) for n in spec.get("env_passthrough", list)),
                    readable=tuple(str(p) for p in spec.get("readable", list)),
                ),
                backend=reader.get("backend", str),
                isolate=reader.get("isolate", bool),
                default_image=reader.optional("default_image", str),
                shared_home=reader.get("shared_home", bool),
                enclave_challenge=reader.optional("enclave_challenge", str),
                sources=tuple(
                    FileDigest(str(s["path"]), str(s["sha256"]), int(s["size_bytes"]))
                    for s in reader.get("sources", list)
                ),
                producers={
                    str(name): Producer(str(p["run_id"]), str(p["envelope"]), str(p["sha256"]))
                    for name, p in reader.get("producers", dict).items()
                },
                spool_dir=Path(reader.get("spool_dir", str)),
                collector_url=reader.optional("collector_url", str),
                collector_token=reader.optional("collector_token", str),
                script=Path(s) if (s := reader.optional("script", str)) else None,
                extra=dict(reader.get("extra", dict)),
                enclave_challenges=challenges,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"{where}: malformed job ticket ({exc!r})") from None
        argv = ticket.spec.argv
        if argv and (
            not all(isinstance(a, str) for a in argv) or exec_command(argv) != ticket.spec.command
        ):
            raise ProtocolError(
                f"{where}: spec field 'argv' must be the strings that field 'command' starts"
            )
        if challenges:
            for member in ticket.members:
                task = job_task_id(ticket.run_id, member.jobid, member.attempt)
                if task not in challenges:
                    raise ProtocolError(
                        f"{where}: field 'enclave_challenges' has no challenge for job "
                        f"{member.jobid} attempt {member.attempt} (task {task})"
                    )
        return ticket


def _challenges_from(reader: _Fields, where: str) -> dict[str, str]:
    """The ticket's task id -> challenge address map; absent (an older ticket): empty."""
    raw = reader.optional("enclave_challenges", dict) or {}
    for task, address in raw.items():
        if not _TASK_ID.match(task) or not isinstance(address, str) or not _ADDRESS.match(address):
            raise ProtocolError(
                f"{where}: field 'enclave_challenges' must map task ids (0x + 64 hex) to "
                f"challenge addresses (0x + 40 hex); got {str(task)[:70]!r}: {str(address)[:50]!r}"
            )
    return dict(raw)


def write_ticket(path: Path, ticket: Ticket) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: the ticket holds the collector token
    write_atomically(path, ticket.to_json(), mode=0o600)


def read_ticket(path: Path) -> Ticket:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProtocolError(f"cannot read job ticket {path}: {exc.strerror or exc}") from None
    return Ticket.from_json(data, where=str(path))


class _Fields:
    """Typed access to a JSON object's fields, naming the field on bad input."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise ProtocolError(f"{where}: expected a JSON object")
        self.raw = raw
        self.where = where

    def get(self, name: str, kind: type[Any]) -> Any:
        value = self.raw.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError(
                f"{self.where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def optional(self, name: str, kind: type[Any]) -> Any:
        return None if self.raw.get(name) is None else self.get(name, kind)


def _facts_json(facts: JobFacts) -> dict[str, Any]:
    return {
        "jobid": facts.jobid,
        "rule": facts.rule,
        "attempt": facts.attempt,
        "inputs": list(facts.inputs),
        "outputs": [
            {
                "path": o.path,
                "is_directory": o.is_directory,
                "is_temp": o.is_temp,
                "is_transient": o.is_transient,
                "is_touch": o.is_touch,
            }
            for o in facts.outputs
        ],
        "logs": list(facts.logs),
        "wildcards": dict(facts.wildcards),
        "params": dict(facts.params),
        "threads": facts.threads,
        "resources": dict(facts.resources),
        "shell_command": facts.shell_command,
        "script": facts.script,
        "has_run_block": facts.has_run_block,
        "snakefile": facts.snakefile,
        "conda_env": facts.conda_env,
        "container": facts.container,
        "network": facts.network,
        "extra_code": list(facts.extra_code),
    }


def _facts_from(raw: Any, where: str) -> JobFacts:
    f = _Fields(raw, where)
    return JobFacts(
        jobid=f.get("jobid", int),
        rule=f.get("rule", str),
        attempt=f.get("attempt", int),
        inputs=tuple(str(i) for i in f.get("inputs", list)),
        outputs=tuple(
            OutputFile(
                path=str(o["path"]),
                is_directory=bool(o["is_directory"]),
                is_temp=bool(o["is_temp"]),
                is_transient=bool(o["is_transient"]),
                is_touch=bool(o["is_touch"]),
            )
            for o in f.get("outputs", list)
        ),
        logs=tuple(str(p) for p in f.get("logs", list)),
        wildcards={str(k): str(v) for k, v in f.get("wildcards", dict).items()},
        params=dict(f.get("params", dict)),
        threads=f.get("threads", int),
        resources=dict(f.get("resources", dict)),
        shell_command=f.optional("shell_command", str),
        script=f.optional("script", str),
        has_run_block=f.get("has_run_block", bool),
        snakefile=f.get("snakefile", str),
        conda_env=f.optional("conda_env", str),
        container=f.optional("container", str),
        network=f.get("network", bool),
        extra_code=tuple(str(c) for c in f.get("extra_code", list)),
    )


def envelopes_of(lines: Sequence[bytes]) -> tuple[bytes, ...]:
    return tuple(line.rstrip(b"\n") for line in lines)


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
