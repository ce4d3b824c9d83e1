"""`pox verify`: check a run bundle end to end, offline, trusting only the signed log.

`run.json` is an unsigned index: the run id, the session keys and the run's status come from
the log's signed entries (see `provenance/records.py`). Checks, each named in its findings:

- `session-open`: the log begins with a session's signed opening; each opening is signed by the
  key it introduces, its evidence binds that key for task `<run-id>/session/<i>`, sessions are
  numbered 0, 1, ... and a resumed session states the (size, root) of the log it continues;
- `run-id`: every entry names the same run as the first opening, and so do run.json, the bundle
  directory and the checkpoint's origin; `requester`: every session names the same requester;
- `signer`: every job record and closing is signed by the key of the latest session opened
  before it, except that in a session whose signed settings name a dispatch (`--pox-dispatch`)
  a job record may instead be signed by a node key its own evidence binds (docs/slurm.md);
  `task-id`: a record's binding task id is the one computed from run/jobid/attempt;
- `evidence`, `session-evidence`, `measurement`: TEE evidence under the policy (`--policy`),
  and the measurement equal to the one the builder id names (accepted measurements are listed);
  `image-expected` (a warning): a `pox/<name>` image's measurement is not the committed
  `enclave_images/<name>/expected-measurement`;
- `checkpoint`, `merkle-root`, `log`, `duplicate`: the signed checkpoint covers the whole log;
- `incomplete`: the log ends with a signed closing; without one the run was interrupted or
  truncated, which strict verification rejects (`--allow-incomplete` makes it a warning, and the
  verdict then says INCOMPLETE, never succeeded); `close`: the closing's size and counts hold;
- `names`, `parent-link`, `files`: names follow `names.py`; each input's digest equals its
  producer's output; files on disk equal the newest successful record, read only if they are
  regular files inside the working directory (`external:` names only with `--check-external`;
  see `file_check.py`).

Simulated evidence fails unless allowed, and then the report says what it does not prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.audit.evidence_check import EvidenceCheck, check_evidence
from pox_executor.audit.file_check import check_files_on_disk
from pox_executor.audit.findings import Report
from pox_executor.enclave.images.cache import expected_for_container
from pox_executor.enclave.verifiers import Policy, parse_policy
from pox_executor.errors import PoxError, UsageError, VerificationError
from pox_executor.primitives import FileTooLargeError, NotARegularFileError, read_regular
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle, origin_for
from pox_executor.provenance.checkpoint import parse_signed_note, verify_checkpoint
from pox_executor.provenance.dsse import verify_envelope
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.names import check_record_name
from pox_executor.provenance.records import (
    JobRecord,
    SessionClose,
    SessionOpen,
    decode_line,
    job_task_id,
    load_json,
    session_task_id,
)
from pox_executor.provenance.statement import KIND_INPUT, KIND_PARENT

SIMULATED_SUMMARY = (
    "evidence is SIMULATED (sim-report): the records were checked to be consistent with each "
    "other, with their checkpoint and with the files, but no TEE vouches for them, so anyone "
    "with write access could have produced them; confidentiality and hardware-backed execution "
    "were NOT checked"
)
STATUS_INCOMPLETE = "incomplete"
_MAX_POLICY_BYTES = 1024 * 1024


@dataclass
class _Session:
    open: SessionOpen
    key: PublicKey
    closed: bool = False


@dataclass
class _Walk:
    """State while reading the log in order."""

    report: Report
    allow_simulated: bool
    policy: Policy | None
    run_id: str | None = None
    current: _Session | None = None
    close: SessionClose | None = None
    records: list[JobRecord] = field(default_factory=list)
    sessions: list[_Session] = field(default_factory=list)
    measurements: set[str] = field(default_factory=set)
    seen: dict[str, int] = field(default_factory=dict)
    simulated: bool = False
    not_isolated: int = 0


def load_verify_policy(path: Path) -> Policy:
    """A `--policy` file (the format `pox attest verify` reads); UsageError names file and field."""
    try:
        raw = read_regular(path, _MAX_POLICY_BYTES)
    except NotARegularFileError as exc:
        raise UsageError(f"{exc}, expected a policy file") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read policy file ({exc.strerror})") from exc
    except FileTooLargeError as exc:
        raise UsageError(
            f"{path}: larger than {_MAX_POLICY_BYTES} bytes; not a policy file"
        ) from exc
    try:
        data = load_json(raw, where=str(path))
        return parse_policy(data, source=str(path))
    except PoxError as exc:
        raise UsageError(str(exc)) from exc


def verify_run(
    bundle: RunBundle,
    *,
    allow_simulated: bool = False,
    allow_incomplete: bool = False,
    check_files: bool = True,
    check_external: bool = False,
    policy: Policy | None = None,
    workdir: Path | None = None,
) -> Report:
    report = Report(subject=f"run {bundle.run_id}")
    workdir = workdir or bundle.workdir
    try:
        read = read_log_lines(bundle.attestations_path)
    except PoxError as exc:
        report.error("log", str(exc), bundle.attestations_path.name)
        return report
    lines = read.lines
    walk = _Walk(report, allow_simulated, policy)
    if not lines:
        message = "the log holds no signed session opening: nothing in this bundle is signed"
        if allow_incomplete:
            report.warn(
                STATUS_INCOMPLETE,
                "the run was interrupted before its first session began: it holds no records",
            )
            report.facts["status"] = STATUS_INCOMPLETE
        else:
            report.error("session-open", message, bundle.attestations_path.name)
    for index, line in enumerate(lines):
        _entry(walk, line, index + 1, lines)
    run_id = walk.run_id or bundle.run_id
    report.subject = f"run {run_id}"
    _check_index(bundle, walk, report)
    _check_checkpoint(bundle, walk, lines, report, allow_incomplete=allow_incomplete)
    _check_end(bundle, walk, lines, read.torn_bytes, report, allow_incomplete=allow_incomplete)

    records = walk.records
    _check_links(records, report, run_id)
    if check_files:
        check_files_on_disk(records, report, workdir, check_external=check_external)
    else:
        report.note("files", "files on disk were not checked (--no-files)")
    for record in records:
        if record.discarded_writes:
            shown = ", ".join(record.discarded_writes[:3])
            more = ", ..." if len(record.discarded_writes) > 3 else ""
            report.note(
                "discarded-writes",
                f"{len(record.discarded_writes)} writes outside the declared outputs were "
                f"discarded: {shown}{more}",
                record.where,
            )

    failed = sum(1 for r in records if not r.succeeded)
    report.facts.update(
        {
            "records": len(records),
            "sessions": len(walk.sessions),
            "failed_attempts": failed,
            "requester": walk.sessions[0].open.requester if walk.sessions else None,
        }
    )
    if failed:
        report.note("jobs", f"{failed} recorded attempts failed (their records are valid)")
    if walk.not_isolated:
        report.warn("isolation", f"{walk.not_isolated} jobs ran WITHOUT isolation (see statements)")
    if walk.measurements:
        accepted = ", ".join(sorted(walk.measurements))
        report.note("measurement", f"accepted measurements: {accepted}")
        report.facts["measurements"] = sorted(walk.measurements)
    report.facts["simulated"] = walk.simulated
    if walk.simulated and allow_simulated:
        report.warn("simulated", SIMULATED_SUMMARY)
    elif walk.simulated:
        report.error(
            "simulated",
            "the run's evidence is simulated (sim-report), which strict verification rejects: "
            "it proves nothing about confidentiality. Pass --allow-simulated to check the "
            "records' integrity anyway",
        )
    return report


# -- the log, entry by entry --------------------------------------------------------------------


def _entry(walk: _Walk, line: bytes, line_no: int, lines: list[bytes]) -> None:
    report = walk.report
    where = f"line {line_no}"
    digest = hashlib.sha256(line).hexdigest()
    if digest in walk.seen:
        report.error(
            "duplicate",
            f"envelope is identical to line {walk.seen[digest]}: a record was duplicated",
            where,
        )
        return
    walk.seen[digest] = line_no
    try:
        envelope, entry = decode_line(line, line_no=line_no)
    except PoxError as exc:
        report.error("envelope", f"not a PoX log entry: {exc}", where)
        return
    if walk.close is not None:
        report.error(
            "log",
            f"an entry after the run's signed closing (line {walk.close.line_no}): entries were "
            "appended after the run ended",
            where,
        )
        return
    if isinstance(entry, SessionOpen):
        _session_open(walk, envelope, entry, lines)
        return
    session = walk.current
    if session is None:
        report.error(
            "session-open",
            "the log does not begin with a signed session opening: no key can be trusted",
            where,
        )
        return
    trusted = {session.key.keyid: session.key}
    if isinstance(entry, JobRecord):
        trusted.update(_node_keys(session, entry))
    try:
        verify_envelope(envelope, trusted)
    except VerificationError as exc:
        report.error(*_explain_signer(exc, envelope, walk), entry.where)
        return
    if entry.run_id != walk.run_id:
        report.error(
            "run-id", f"the entry belongs to run {entry.run_id!r}, not {walk.run_id!r}", entry.where
        )
        return
    if isinstance(entry, SessionClose):
        _session_close(walk, entry, line_no)
        return
    _job(walk, entry, session, signer=_signer_of(envelope, trusted, session))


def _node_keys(session: _Session, record: JobRecord) -> dict[str, PublicKey]:
    """Keys a dispatched job's node may sign with: in a session whose signed settings name a
    dispatch (`--pox-dispatch`), the keys the record's own evidence binds (checked in `_job`)."""
    if not session.open.settings.get("dispatch"):
        return {}
    keys = {}
    for text in record.binding.public_keys:
        try:
            key = PublicKey.from_hex(text)
        except PoxError:
            continue
        keys[key.keyid] = key
    return keys


def _signer_of(
    envelope: Mapping[str, Any], trusted: Mapping[str, PublicKey], session: _Session
) -> PublicKey:
    """The trusted key that signed (the session key when it did)."""
    signatures = envelope.get("signatures")
    keyids = (
        {str(s.get("keyid")) for s in signatures or [] if isinstance(s, Mapping)}
        if isinstance(signatures, list)
        else set()
    )
    if session.key.keyid in keyids:
        return session.key
    return next((trusted[k] for k in sorted(keyids) if k in trusted), session.key)


def _explain_signer(
    exc: VerificationError, envelope: Mapping[str, Any], walk: _Walk
) -> tuple[str, str]:
    if "does not verify over the payload" in str(exc):
        return "envelope", str(exc)
    signatures = envelope.get("signatures")
    keyids = (
        [str(s.get("keyid")) for s in signatures or [] if isinstance(s, Mapping)]
        if isinstance(signatures, list)
        else []
    )
    assert walk.current is not None
    for session in walk.sessions:
        if session.key.keyid in keyids:
            return (
                "signer",
                f"signed by the key of session {session.open.session}, but session "
                f"{walk.current.open.session} had opened before it",
            )
    shown = keyids[0] if keyids else "no keyid"
    return (
        "signer",
        f"signed by key {shown}, which is not a session key of this run (no signed session "
        "opening of this run introduced it)",
    )


def _session_open(
    walk: _Walk, envelope: Mapping[str, Any], entry: SessionOpen, lines: list[bytes]
) -> None:
    report, where = walk.report, entry.where
    try:
        verify_envelope(envelope, {entry.public_key.keyid: entry.public_key})
    except VerificationError as exc:
        report.error("session-open", f"not signed by the key it introduces: {exc}", where)
        return
    if walk.run_id is None:
        if entry.line_no != 1:
            report.error(
                "session-open", "a session opening below entries that no opening precedes", where
            )
            return
        walk.run_id = entry.run_id
    elif entry.run_id != walk.run_id:
        report.error(
            "run-id",
            f"a session of run {entry.run_id!r} in the log of run {walk.run_id!r}: another run's "
            "entries were appended",
            where,
        )
        return
    problems = []
    expected_index = len(walk.sessions)
    if entry.session != expected_index:
        problems.append(f"it says session {entry.session}, but it is session {expected_index}")
    if entry.origin != origin_for(entry.run_id):
        problems.append(f"origin {entry.origin!r} is not {origin_for(entry.run_id)!r}")
    expected_task = session_task_id(entry.run_id, entry.session)
    if entry.binding.task_id != expected_task:
        problems.append(f"the evidence binds task {entry.binding.task_id!r}, not {expected_task!r}")
    before = entry.line_no - 1
    if before == 0 and entry.continues is not None:
        problems.append("the first session says it continues an earlier log")
    elif before:
        root = merkle.root([merkle.leaf_hash(line) for line in lines[:before]]).hex()
        if entry.continues != (before, root):
            problems.append(
                f"it continues a log of {entry.continues}, but {before} entries with root "
                f"{root[:16]}... precede it"
            )
    if walk.sessions and entry.requester != walk.sessions[0].open.requester:
        report.error(
            "requester",
            f"requester {entry.requester} differs from session 0's "
            f"{walk.sessions[0].open.requester}",
            where,
        )
    for problem in problems:
        report.error("session-open", problem, where)
    checked = check_evidence(
        entry.evidence,
        entry.binding,
        signer_public_hex=entry.public_key.hex(),
        allow_simulated=True,  # judged once for the whole run, see verify_run
        attested_at=entry.started,
        policy=walk.policy,
        builder_id=entry.builder_id,
    )
    _report_evidence(walk, checked, "session-evidence", where)
    if entry.evidence.type == "sim-report":
        walk.simulated = True
    if problems or checked.problems:
        return
    session = _Session(entry, entry.public_key)
    walk.sessions.append(session)
    walk.current = session


def _session_close(walk: _Walk, entry: SessionClose, line_no: int) -> None:
    report = walk.report
    assert walk.current is not None
    session = walk.current.open.session
    if entry.session != session:
        report.error("close", f"it closes session {entry.session}, not {session}", entry.where)
    if entry.size != line_no - 1:
        report.error(
            "close",
            f"it says the log held {entry.size} entries before it, but it is entry {line_no}",
            entry.where,
        )
    if entry.status not in ("succeeded", "failed"):
        report.error("close", f"status {entry.status!r} is neither succeeded nor failed")
    mine = [r for r in walk.records if r.line_no > walk.current.open.line_no]
    succeeded = sum(1 for r in mine if r.succeeded)
    if (entry.succeeded, entry.failed) != (succeeded, len(mine) - succeeded):
        report.error(
            "close",
            f"it counts {entry.succeeded} succeeded and {entry.failed} failed attempts; the "
            f"session's records show {succeeded} and {len(mine) - succeeded}",
            entry.where,
        )
    walk.close = entry


def _job(walk: _Walk, record: JobRecord, session: _Session, *, signer: PublicKey) -> None:
    report = walk.report
    expected_task = job_task_id(record.run_id, record.jobid, record.attempt)
    if record.task_id != expected_task:
        report.error(
            "task-id",
            f"the evidence binds task {record.task_id[:18]}..., not this attempt's "
            f"{expected_task[:18]}... (computed from run, jobid and attempt)",
            record.where,
        )
    for resource in (*record.subjects, *record.dependencies_of_kind(KIND_INPUT)):
        try:
            check_record_name(resource.name, where=record.where)
        except VerificationError as exc:
            report.error("names", str(exc), record.where)
    _report_datasets(report, record)
    if record.status == "succeeded" and record.missing_outputs:
        report.error("status", "a succeeded attempt lists missing outputs", record.where)
    checked = check_evidence(
        record.evidence,
        record.binding,
        signer_public_hex=signer.hex(),
        allow_simulated=True,  # judged once for the whole run, see verify_run
        attested_at=record.finished_on,
        policy=walk.policy,
        builder_id=record.builder_id,
    )
    _report_evidence(walk, checked, "evidence", record.where)
    image = next((d for d in record.dependencies if d.name == "pox:environment/image"), None)
    if image is not None and image.sha256 != record.binding.image_digest.removeprefix("sha256:"):
        report.error(
            "measurement",
            f"the statement names image {str(image.sha256)[:16]}..., the evidence binds "
            f"{record.binding.image_digest[:23]}...",
            record.where,
        )
    if image is not None and image.sha256:
        _check_committed_image(record, image.sha256, report)
    if record.evidence.type == "sim-report":
        walk.simulated = True
    if not record.isolated:
        walk.not_isolated += 1
    walk.records.append(record)


def _report_datasets(report: Report, record: JobRecord) -> None:
    """Confidential datasets read and sealed results written (datasets/provenance.py): shown,
    and their recorded checksum must be the digest of the file the statement names."""
    for resource in (*record.dependencies_of_kind(KIND_INPUT), *record.subjects):
        facts = resource.annotations.get("pox.dataset")
        if not isinstance(facts, dict):
            continue
        role = "sealed result" if "sealed_for" in facts else "dataset"
        where = facts.get("address") or "not registered"
        report.note(
            "dataset",
            f"{role} {resource.name}: address {where}, checksum {facts.get('checksum')}, "
            f"CID {facts.get('cid')} ({facts.get('cid_profile')})",
            record.where,
        )
        if facts.get("checksum") != f"0x{resource.sha256}":
            report.error(
                "dataset",
                f"{resource.name}: recorded checksum {facts.get('checksum')} is not the file's "
                f"digest 0x{resource.sha256}",
                record.where,
            )


def _check_committed_image(record: JobRecord, measurement: str, report: Report) -> None:
    """`image-expected`: a pox image's measurement is its recipe's committed expected one."""
    container = next(
        (d for d in record.dependencies if d.name == "pox:environment/container"), None
    )
    if container is None:
        return
    committed = expected_for_container(str(container.annotations.get("image", "")))
    if committed is not None and committed[1] != measurement:
        name, expected = committed
        report.warn(
            "image-expected",
            f"the job ran in pox/{name} with measurement {measurement}, not the committed "
            f"expected-measurement {expected} of enclave_images/{name} (an image built from "
            f"another lock; get exactly that one back with `pox images fetch {measurement}`)",
            record.where,
        )


def _report_evidence(walk: _Walk, checked: EvidenceCheck, check: str, where: str) -> None:
    for problem in checked.problems:
        walk.report.error(check, problem, where)
    if checked.measurement_problem:
        walk.report.error("measurement", checked.measurement_problem, where)
    elif not checked.problems:
        walk.measurements.update(f"{k}={v}" for k, v in sorted(checked.measurements.items()))


# -- index, checkpoint, end of log --------------------------------------------------------------


def _check_index(bundle: RunBundle, walk: _Walk, report: Report) -> None:
    """run.json and the directory name are unsigned, but must not contradict the signed log."""
    if walk.run_id is None:
        return
    if bundle.run_id != walk.run_id:
        report.error(
            "run-id",
            f"run.json says run {bundle.run_id!r}, the signed log says {walk.run_id!r}",
            "run.json",
        )
    if bundle.path.name != walk.run_id:
        report.error(
            "run-id",
            f"the bundle directory is named {bundle.path.name!r}, the signed log's run is "
            f"{walk.run_id!r}",
            str(bundle.path.name),
        )


def _check_checkpoint(
    bundle: RunBundle, walk: _Walk, lines: list[bytes], report: Report, *, allow_incomplete: bool
) -> None:
    if not lines:
        return
    origin = origin_for(walk.run_id or bundle.run_id)
    try:
        text = bundle.read_checkpoint()
        unverified, _ = parse_signed_note(text)
        # a checkpoint is signed by a session key introduced inside the prefix it covers
        keys = {s.open.key_name: s.key for s in walk.sessions if s.open.line_no <= unverified.size}
        checkpoint = verify_checkpoint(text, keys, origin=origin)
    except FileNotFoundError:
        if walk.close is None and allow_incomplete:
            report.warn(
                "checkpoint",
                "no checkpoint yet (the run was interrupted before it was written): "
                f"none of the {len(lines)} entries is covered by one",
                "checkpoint",
            )
        else:
            report.error("checkpoint", "the checkpoint file is missing", "checkpoint")
        return
    except (PoxError, OSError, UnicodeDecodeError) as exc:
        report.error("checkpoint", str(exc), "checkpoint")
        return
    report.facts["tree_size"] = checkpoint.size
    report.facts["root"] = checkpoint.root.hex()
    if checkpoint.size > len(lines):
        report.error(
            "log",
            f"the checkpoint covers {checkpoint.size} envelopes but the log holds only "
            f"{len(lines)}: envelopes were removed",
            bundle.attestations_path.name,
        )
        return
    computed = merkle.root([merkle.leaf_hash(line) for line in lines[: checkpoint.size]])
    if computed != checkpoint.root:
        report.error(
            "merkle-root",
            f"the RFC 9162 root of the first {checkpoint.size} envelopes is {computed.hex()[:16]}"
            f"..., the checkpoint says {checkpoint.root.hex()[:16]}...: envelopes were "
            "changed, reordered, swapped or inserted",
            bundle.attestations_path.name,
        )
    extra = len(lines) - checkpoint.size
    if extra and walk.close is None and allow_incomplete:
        report.warn(
            "log",
            f"{extra} envelopes after the checkpoint are not covered by it (the run was "
            "interrupted; resuming it re-checkpoints them)",
            bundle.attestations_path.name,
        )
    elif extra:
        report.error(
            "log",
            f"{extra} envelopes after the checkpoint are not covered by it: lines were appended "
            "or duplicated after the checkpoint was signed",
            bundle.attestations_path.name,
        )


def _check_end(
    bundle: RunBundle,
    walk: _Walk,
    lines: list[bytes],
    torn_bytes: int,
    report: Report,
    *,
    allow_incomplete: bool,
) -> None:
    name = bundle.attestations_path.name
    if walk.close is not None:
        report.facts["status"] = walk.close.status
        if torn_bytes:
            report.error(
                "log",
                f"{torn_bytes} bytes after the last complete line of a finished run: data was "
                "appended to the log after the run ended",
                name,
            )
        if bundle.index.status != walk.close.status:
            report.warn(
                "run.json",
                f"run.json says {bundle.index.status!r}; the signed closing says "
                f"{walk.close.status!r} (run.json is an unsigned index)",
                "run.json",
            )
        return
    if not lines:
        return
    report.facts["status"] = STATUS_INCOMPLETE
    message = (
        "the log does not end with a signed session closing: the run was interrupted, or the "
        "log was truncated to an earlier prefix"
    )
    if allow_incomplete:
        report.warn(STATUS_INCOMPLETE, message, name)
        if torn_bytes:
            report.warn(
                "log",
                f"{torn_bytes} bytes after the last complete line (a write interrupted by a "
                "crash); they are not part of the log",
                name,
            )
    else:
        report.error(
            STATUS_INCOMPLETE,
            message + "; pass --allow-incomplete to check what it holds",
            name,
        )
        if torn_bytes:
            report.error("log", f"{torn_bytes} bytes after the last complete line of the log", name)


# -- links and files ----------------------------------------------------------------------------


def _check_links(records: list[JobRecord], report: Report, run_id: str) -> None:
    by_digest = {r.digest: r for r in records}
    for record in records:
        for dep in record.dependencies_of_kind(KIND_PARENT):
            parent = by_digest.get(dep.sha256 or "")
            if parent is None:
                report.error(
                    "parent-link",
                    f"parent envelope {str(dep.sha256)[:16]}... is not in this log",
                    record.where,
                )
            elif parent.line_no >= record.line_no:
                report.error(
                    "parent-link",
                    f"parent envelope is at line {parent.line_no}, after its child",
                    record.where,
                )
        for dep in record.dependencies_of_kind(KIND_INPUT):
            if dep.annotations.get("pox.origin") != "job":
                continue
            producer_info = dep.annotations.get("pox.producer")
            if not isinstance(producer_info, Mapping):
                producer_info = {}
            producer = by_digest.get(str(producer_info.get("envelope", "")))
            if producer is None or producer_info.get("run_id", run_id) != run_id:
                report.error(
                    "parent-link",
                    f"input {dep.name}: its producer envelope is not in this log",
                    record.where,
                )
                continue
            produced = {s.name: s.sha256 for s in producer.subjects}
            directory = producer_info.get("directory")
            if directory is not None:
                # a file inside the producer's directory() output: the directory must be listed
                if directory not in produced or not dep.name.startswith(f"{directory}/"):
                    report.error(
                        "parent-link",
                        f"input {dep.name}: the producer ({producer.where}) has no directory "
                        f"output {directory!r} containing it",
                        record.where,
                    )
            elif dep.name not in produced:
                report.error(
                    "parent-link",
                    f"input {dep.name}: the producer ({producer.where}) has no such output",
                    record.where,
                )
            elif produced[dep.name] != dep.sha256:
                report.error(
                    "parent-link",
                    f"input {dep.name} has sha256 {str(dep.sha256)[:16]}... but its producer "
                    f"({producer.where}) recorded {str(produced[dep.name])[:16]}...",
                    record.where,
                )
