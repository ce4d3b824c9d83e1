"""`pox verify`: check a run bundle end to end, offline.

Checks, in order: run.json and its sessions (each session key bound by evidence); the checkpoint
(signed by a session key, for this run's origin); the log against the checkpoint (size, RFC 9162
root, no duplicates, nothing after the checkpoint unless the run was interrupted); every envelope
(DSSE signature by a session key, statement structure, evidence binding the signer); every parent
link (each input's digest equals its producer's output digest, producers logged before consumers);
and the files on disk against the recorded digests. Every failure names the line, job, file and
check; simulated evidence fails unless allowed, and then the report says what it does not prove.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pox_executor.audit.evidence_check import check_evidence
from pox_executor.audit.findings import Report
from pox_executor.enclave.evidence import Evidence
from pox_executor.errors import PoxError, VerificationError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import STATUS_RUNNING, RunBundle
from pox_executor.provenance.checkpoint import parse_vkey, verify_checkpoint
from pox_executor.provenance.digests import Hasher
from pox_executor.provenance.dsse import envelope_digest, verify_envelope
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.statement import (
    KIND_INPUT,
    KIND_PARENT,
    Binding,
    ParsedJob,
    parse_statement,
)

SIMULATED_SUMMARY = (
    "evidence is SIMULATED (sim-report): the records were checked to be consistent with each "
    "other, with their checkpoint and with the files, but no TEE vouches for them, so anyone "
    "with write access could have produced them; confidentiality and hardware-backed execution "
    "were NOT checked"
)


@dataclass
class Record:
    """One verified log line."""

    line_no: int
    digest: str
    job: ParsedJob

    @property
    def where(self) -> str:
        job = self.job
        return f"line {self.line_no}, job {job.jobid} ({job.rule}) attempt {job.attempt}"


def _sessions(
    bundle: RunBundle, report: Report, allow_simulated: bool, *, empty_and_interrupted: bool
) -> dict[str, PublicKey]:
    """keyid -> public key of every session whose key is bound by its evidence."""
    keys: dict[str, PublicKey] = {}
    sessions = bundle.meta.get("sessions")
    if not isinstance(sessions, list) or not sessions:
        if empty_and_interrupted:
            report.warn(
                "run.json",
                "the run was interrupted before its first session began: it holds no records",
                "run.json",
            )
        else:
            report.error("run.json", "no sessions recorded: no key can be trusted", "run.json")
        return keys
    for i, session in enumerate(sessions):
        where = f"run.json sessions[{i}]"
        try:
            name, key = parse_vkey(str(session["vkey"]))
            if name != session["key_name"] or key.hex() != session["public_key"]:
                raise VerificationError("vkey does not match key_name/public_key")
            binding = Binding.from_json(session["binding"], where=f"{where}.binding")
            evidence = Evidence.from_json(session["evidence"], where=f"{where}.evidence")
        except (KeyError, TypeError, ValueError, PoxError) as exc:
            report.error("session", f"malformed session entry ({exc})", where)
            continue
        problems = check_evidence(
            evidence,
            binding,
            signer_public_hex=key.hex(),
            allow_simulated=True,  # judged once for the whole run, see verify_run
            attested_at=session.get("started"),
        )
        for problem in problems:
            report.error("session-evidence", problem, where)
        if not problems:
            keys[key.keyid] = key
    return keys


def verify_run(
    bundle: RunBundle,
    *,
    allow_simulated: bool = False,
    check_files: bool = True,
    workdir: Path | None = None,
) -> Report:
    report = Report(subject=f"run {bundle.run_id}")
    workdir = workdir or bundle.workdir
    read = read_log_lines(bundle.attestations_path)
    lines = read.lines
    # killed between creating the bundle and writing its first checkpoint: an empty prefix
    empty_and_interrupted = not lines and bundle.meta.get("status") == STATUS_RUNNING
    keys = _sessions(bundle, report, allow_simulated, empty_and_interrupted=empty_and_interrupted)
    note_keys = {}
    for session in bundle.meta.get("sessions", []):
        try:
            name, key = parse_vkey(str(session["vkey"]))
        except (KeyError, PoxError):
            continue
        if key.keyid in keys:
            note_keys[name] = key

    # -- checkpoint and log -----------------------------------------------------------------
    if read.torn_bytes and bundle.meta.get("status") == STATUS_RUNNING:
        report.warn(
            "log",
            f"{read.torn_bytes} bytes after the last complete line (a write interrupted by a "
            "crash); they are not part of the log",
            bundle.attestations_path.name,
        )
    elif read.torn_bytes:
        # a finished run's writer closed its log cleanly: nothing can be torn, so it was added
        report.error(
            "log",
            f"{read.torn_bytes} bytes after the last complete line of a finished run: data was "
            "appended to the log after the run ended",
            bundle.attestations_path.name,
        )
    try:
        checkpoint_text = bundle.checkpoint_path.read_text(encoding="utf-8")
        checkpoint = verify_checkpoint(
            checkpoint_text, note_keys, origin=str(bundle.meta.get("origin"))
        )
    except FileNotFoundError:
        if empty_and_interrupted:
            report.warn("checkpoint", "no checkpoint yet (interrupted before it was written)")
        else:
            report.error("checkpoint", "the checkpoint file is missing", "checkpoint")
        checkpoint = None
    except (PoxError, UnicodeDecodeError) as exc:
        report.error("checkpoint", str(exc), "checkpoint")
        checkpoint = None

    covered = len(lines)
    if checkpoint is not None:
        report.facts["tree_size"] = checkpoint.size
        report.facts["root"] = checkpoint.root.hex()
        if checkpoint.size > len(lines):
            report.error(
                "log",
                f"the checkpoint covers {checkpoint.size} envelopes but the log holds only "
                f"{len(lines)}: envelopes were removed",
                bundle.attestations_path.name,
            )
        else:
            covered = checkpoint.size
            computed = merkle.root([merkle.leaf_hash(line) for line in lines[:covered]])
            if computed != checkpoint.root:
                report.error(
                    "merkle-root",
                    f"the RFC 9162 root of the first {covered} envelopes is {computed.hex()[:16]}"
                    f"..., the checkpoint says {checkpoint.root.hex()[:16]}...: envelopes were "
                    "changed, reordered, swapped or inserted",
                    bundle.attestations_path.name,
                )
            extra = len(lines) - covered
            if extra:
                if bundle.meta.get("status") == STATUS_RUNNING:
                    report.warn(
                        "log",
                        f"{extra} envelopes after the checkpoint are not covered by it (the run "
                        "was interrupted; resuming it re-checkpoints them)",
                        bundle.attestations_path.name,
                    )
                else:
                    report.error(
                        "log",
                        f"{extra} envelopes after the checkpoint of a finished run: lines were "
                        "appended or duplicated after the run ended",
                        bundle.attestations_path.name,
                    )

    # -- envelopes --------------------------------------------------------------------------
    records: list[Record] = []
    seen: dict[str, int] = {}
    simulated = False
    not_isolated = 0
    for index, line in enumerate(lines):
        line_no = index + 1
        digest = envelope_digest(line)
        where = f"line {line_no}"
        if digest in seen:
            report.error(
                "duplicate",
                f"envelope is identical to line {seen[digest]}: a record was duplicated",
                where,
            )
            continue
        seen[digest] = line_no
        try:
            envelope = json.loads(line)
            payload = verify_envelope(envelope, keys)
            job = parse_statement(payload, where=where)
        except (ValueError, PoxError) as exc:
            report.error("envelope", _explain_envelope_failure(exc, line, keys), where)
            continue
        record = Record(line_no, digest, job)
        signer = _signer(envelope, keys)
        problems = check_evidence(
            job.evidence,
            job.binding,
            signer_public_hex=signer.hex() if signer else "",
            allow_simulated=True,  # judged once for the whole run, below
            attested_at=_finished_on(job),
        )
        for problem in problems:
            report.error("evidence", problem, record.where)
        if job.evidence.type == "sim-report":
            simulated = True
        if not job.isolated:
            not_isolated += 1
        records.append(record)

    _check_links(records, report)
    if check_files:
        _check_files(records, report, workdir)
    else:
        report.note("files", "files on disk were not checked (--no-files)")

    failed = sum(1 for r in records if r.job.status != "succeeded")
    report.facts.update(
        {
            "records": len(records),
            "failed_attempts": failed,
            "status": bundle.meta.get("status"),
            "simulated": simulated,
        }
    )
    if failed:
        report.note("jobs", f"{failed} recorded attempts failed (their records are valid)")
    if not_isolated:
        report.warn("isolation", f"{not_isolated} jobs ran WITHOUT isolation (see statements)")
    simulated = simulated or any(
        s.get("evidence", {}).get("type") == "sim-report" for s in bundle.meta.get("sessions", [])
    )
    report.facts["simulated"] = simulated
    if simulated and allow_simulated:
        report.warn("simulated", SIMULATED_SUMMARY)
    elif simulated:
        report.error(
            "simulated",
            "the run's evidence is simulated (sim-report), which strict verification rejects: "
            "it proves nothing about confidentiality. Pass --allow-simulated to check the "
            "records' integrity anyway",
        )
    return report


def _signer(envelope: Mapping[str, Any], keys: Mapping[str, PublicKey]) -> PublicKey | None:
    for signature in envelope.get("signatures", []):
        key = keys.get(str(signature.get("keyid")))
        if key is not None:
            return key
    return None


def _explain_envelope_failure(exc: Exception, line: bytes, keys: Mapping[str, PublicKey]) -> str:
    try:
        envelope = json.loads(line)
        keyids = [str(s.get("keyid")) for s in envelope.get("signatures", [])]
    except (ValueError, AttributeError):
        return f"not a JSON envelope ({exc})"
    foreign = [k for k in keyids if k not in keys]
    if foreign and not any(k in keys for k in keyids):
        return f"signed by key {foreign[0]}, which is not a session key of this run"
    return str(exc)


def _finished_on(job: ParsedJob) -> str | None:
    meta = job.statement.get("predicate", {}).get("runDetails", {}).get("metadata", {})
    value = meta.get("finishedOn")
    return str(value) if value else None


def _check_links(records: list[Record], report: Report) -> None:
    by_digest = {r.digest: r for r in records}
    for record in records:
        for dep in record.job.dependencies_of_kind(KIND_PARENT):
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
        for dep in record.job.dependencies_of_kind(KIND_INPUT):
            origin = dep.annotations.get("pox.origin")
            if origin != "job":
                continue
            producer_info = dep.annotations.get("pox.producer") or {}
            producer = by_digest.get(str(producer_info.get("envelope", "")))
            if producer is None:
                report.error(
                    "parent-link",
                    f"input {dep.name}: its producer envelope is not in this log",
                    record.where,
                )
                continue
            produced = {s.name: s.sha256 for s in producer.job.subjects}
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


def _check_files(records: list[Record], report: Report, workdir: Path) -> None:
    """Compare the files on disk with the newest successful record of each path."""
    expected: dict[str, tuple[str, bool, str]] = {}
    for record in records:
        if record.job.status != "succeeded":
            continue
        for dep in record.job.dependencies_of_kind(KIND_INPUT):
            if dep.annotations.get("pox.origin") == "source" and dep.sha256:
                expected.setdefault(dep.name, (dep.sha256, False, record.where))
        for subject in record.job.subjects:
            if subject.sha256:
                temp = bool(subject.annotations.get("pox.temp"))
                expected[subject.name] = (subject.sha256, temp, record.where)
    hasher = Hasher()  # no persistent cache: an auditor re-reads every byte
    present = [p for p in sorted(expected) if (workdir / p).exists()]
    actual = {d.path: d.sha256 for d in hasher.digest_paths(present, base=workdir)}
    checked = 0
    for path in sorted(expected):
        sha, temp, where = expected[path]
        if path not in actual:
            if temp:
                report.note("files", f"{path} was a temp() output and is gone, as expected", where)
            else:
                report.error("files", f"{path} is missing on disk", where)
            continue
        checked += 1
        if actual[path] != sha:
            report.error(
                "files",
                f"{path} on disk has sha256 {actual[path][:16]}... but the record says "
                f"{sha[:16]}...: the file changed after the run",
                where,
            )
    report.facts["files_checked"] = checked
    report.facts["bytes_hashed"] = hasher.bytes_read


def decode_payload(line: bytes) -> dict[str, Any]:
    """The statement inside an envelope line, without verifying anything (for display)."""
    try:
        envelope = json.loads(line)
        result: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise VerificationError(f"not a PoX envelope ({exc})") from exc
    return result
