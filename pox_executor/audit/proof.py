"""`pox prove` / `pox verify-proof`: a self-contained proof that a file is an output of a run.

The proof is a C2SP tlog-proof@v1 text. Its `extra` line carries PoX's JSON (`pox-file-proof/v2`):
the file's path and sha256, the job's DSSE envelope line (the log leaf), and the run's signed
session openings (log lines: each session's key, self-signed, with the TEE evidence binding it to
task `<run-id>/session/<i>`). Then come the inclusion hashes and the signed checkpoint. Checking it
needs nothing else: the leaf hashes into the checkpointed root, the checkpoint and the job are
signed by session keys of this run, each bound by evidence, the job's attempt succeeded (a proof
of a failed attempt is refused) and its statement lists the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pox_executor.audit.evidence_check import check_evidence
from pox_executor.audit.findings import Report
from pox_executor.enclave.verifiers import Policy
from pox_executor.errors import BundleError, PoxError, UsageError, VerificationError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle, origin_for
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.digests import Hasher
from pox_executor.provenance.dsse import verify_envelope
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.names import record_name
from pox_executor.provenance.records import (
    JobRecord,
    SessionOpen,
    decode_line,
    job_task_id,
    load_json,
    session_task_id,
)
from pox_executor.provenance.tlog_proof import format_proof, parse_proof, verify_proof

PROOF_FORMAT = "pox-file-proof/v2"


@dataclass(frozen=True)
class ProofTarget:
    path: str
    sha256: str
    index: int
    line: bytes


def _relative(file: Path, workdir: Path) -> str:
    full = file if file.is_absolute() else Path.cwd() / file
    try:
        relative = full.resolve().relative_to(workdir.resolve())
    except ValueError as exc:
        raise UsageError(f"{file} is not inside the run's working directory {workdir}") from exc
    return record_name(relative, workdir.resolve())


def find_producer(bundle: RunBundle, path: str, covered: int) -> ProofTarget:
    """The newest succeeded, checkpointed record whose subjects include `path`."""
    lines = read_log_lines(bundle.attestations_path).lines[:covered]
    failed = False
    for index in range(len(lines) - 1, -1, -1):
        try:
            _, entry = decode_line(lines[index], line_no=index + 1)
        except PoxError:
            continue
        if not isinstance(entry, JobRecord):
            continue
        for subject in entry.subjects:
            if subject.name == path and subject.sha256:
                if entry.succeeded:
                    return ProofTarget(path, subject.sha256, index, lines[index])
                failed = True
    hint = "`pox show` lists the run's jobs and outputs"
    if failed:
        raise UsageError(
            f"{path} was recorded only by failed attempts in run {bundle.run_id}", hint=hint
        )
    raise UsageError(
        f"{path} is not an output of any job recorded in run {bundle.run_id}", hint=hint
    )


def make_proof(bundle: RunBundle, file: Path) -> str:
    """The proof text for `file` (a path inside the run's working directory)."""
    path = _relative(file, bundle.workdir)
    try:
        checkpoint_text = bundle.read_checkpoint()
    except OSError as exc:  # (missing; anything else is already a BundleError)
        raise BundleError(f"{bundle.checkpoint_path}: cannot read the checkpoint ({exc})") from exc
    checkpoint, _signatures = parse_signed_note(checkpoint_text)
    target = find_producer(bundle, path, checkpoint.size)
    lines = read_log_lines(bundle.attestations_path).lines[: checkpoint.size]
    tree = merkle.MerkleTree([merkle.leaf_hash(line) for line in lines])
    hashes = tree.inclusion_proof(target.index)
    openings = []
    for index, line in enumerate(lines):
        try:
            _, entry = decode_line(line, line_no=index + 1)
        except PoxError:
            continue
        if isinstance(entry, SessionOpen):
            openings.append(line.decode("utf-8"))
    if not openings:
        raise VerificationError("the log holds no signed session opening")
    extra = {
        "format": PROOF_FORMAT,
        "run_id": bundle.run_id,
        "file": {"path": target.path, "sha256": target.sha256},
        "envelope": target.line.decode("utf-8"),
        "session_openings": openings,
    }
    extra_bytes = json.dumps(extra, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return format_proof(target.index, hashes, checkpoint_text, extra_bytes)


def verify_file_proof(
    text: str,
    *,
    file: Path | None = None,
    allow_simulated: bool = False,
    policy: Policy | None = None,
) -> Report:
    """Check a proof with nothing else at hand; with `file`, also check its bytes."""
    report = Report(subject="proof")
    try:
        parsed = parse_proof(text)
        if parsed.extra is None:
            raise VerificationError("the proof has no 'extra' line with PoX data")
        extra = load_json(parsed.extra, where="extra")
        if not isinstance(extra, dict) or extra.get("format") != PROOF_FORMAT:
            raise VerificationError(f"extra data is not {PROOF_FORMAT}")
        run_id = str(extra["run_id"])
        path = str(extra["file"]["path"])
        sha256 = str(extra["file"]["sha256"])
        line = str(extra["envelope"]).encode("utf-8")
        openings = [str(o).encode("utf-8") for o in extra["session_openings"]]
    except (PoxError, ValueError, KeyError, TypeError) as exc:
        report.error("format", f"not a PoX file proof: {exc}")
        return report
    report.facts.update({"file": path, "sha256": sha256, "run_id": run_id})

    verifiers: dict[str, PublicKey] = {}
    trusted: dict[str, PublicKey] = {}
    for i, opening in enumerate(openings):
        where = f"session opening {i}"
        try:
            envelope, entry = decode_line(opening, line_no=i + 1)
            if not isinstance(entry, SessionOpen):
                raise VerificationError("not a session opening")
            verify_envelope(envelope, {entry.public_key.keyid: entry.public_key})
            if entry.run_id != run_id:
                raise VerificationError(f"it opens a session of run {entry.run_id!r}")
            if entry.binding.task_id != session_task_id(run_id, entry.session):
                raise VerificationError(f"its evidence binds task {entry.binding.task_id!r}")
        except PoxError as exc:
            report.error("session-open", str(exc), where)
            continue
        checked = check_evidence(
            entry.evidence,
            entry.binding,
            signer_public_hex=entry.public_key.hex(),
            allow_simulated=True,  # judged once below
            attested_at=entry.started,
            policy=policy,
            builder_id=entry.builder_id,
        )
        for problem in checked.problems:
            report.error("session-evidence", problem, where)
        if checked.measurement_problem:
            report.error("measurement", checked.measurement_problem, where)
        verifiers[entry.key_name] = entry.public_key
        trusted[entry.public_key.keyid] = entry.public_key
        if entry.evidence.type == "sim-report":
            report.facts["simulated"] = True

    try:
        _, checkpoint = verify_proof(
            text, merkle.leaf_hash(line), verifiers, origin=origin_for(run_id)
        )
        report.facts.update({"index": parsed.index, "tree_size": checkpoint.size})
    except PoxError as exc:
        report.error("inclusion", str(exc))

    try:
        envelope, job = decode_line(line, line_no=parsed.index + 1)
        if not isinstance(job, JobRecord):
            raise VerificationError("the proof's leaf is not a job record")
        verify_envelope(envelope, trusted)
    except PoxError as exc:
        report.error("envelope", f"the job envelope does not verify: {exc}")
        return _finish(report, file, sha256, allow_simulated)
    signer = next(
        (trusted[str(s.get("keyid"))] for s in envelope["signatures"] if s.get("keyid") in trusted),
        None,
    )
    checked = check_evidence(
        job.evidence,
        job.binding,
        signer_public_hex=signer.hex() if signer else "",
        allow_simulated=True,  # judged once below
        attested_at=job.finished_on,
        policy=policy,
        builder_id=job.builder_id,
    )
    for problem in checked.problems:
        report.error("evidence", problem, job.where)
    if checked.measurement_problem:
        report.error("measurement", checked.measurement_problem, job.where)
    if job.run_id != run_id:
        report.error("run-id", f"the job belongs to run {job.run_id!r}, not {run_id!r}")
    if job.task_id != job_task_id(run_id, job.jobid, job.attempt):
        report.error("task-id", "the evidence binds another task than this attempt's")
    if not job.succeeded:
        report.error(
            "status",
            f"the job's attempt {job.attempt} FAILED: a failed job's outputs are not proven",
        )
    subjects = {s.name: s.sha256 for s in job.subjects}
    if subjects.get(path) != sha256:
        report.error("subject", f"the job's statement does not list {path} with that sha256")
    report.facts.update({"rule": job.rule, "jobid": job.jobid})
    if job.evidence.type == "sim-report":
        report.facts["simulated"] = True
    return _finish(report, file, sha256, allow_simulated)


def _finish(report: Report, file: Path | None, sha256: str, allow_simulated: bool) -> Report:
    if report.facts.get("simulated") and not allow_simulated:
        report.error(
            "simulated",
            "the proof rests on simulated evidence (sim-report), which strict verification "
            "rejects; pass --allow-simulated to check its integrity anyway",
        )
    if file is not None:
        actual = Hasher().digest_one(file.name, base=file.parent).sha256
        if actual != sha256:
            report.error(
                "file", f"{file} has sha256 {actual[:16]}..., the proof is for {sha256[:16]}..."
            )
        else:
            report.facts["file_checked"] = str(file)
    return report
