"""`pox prove` / `pox verify-proof`: a self-contained proof that a file is an output of a run.

The proof is a C2SP tlog-proof@v1 text. Its `extra` line carries PoX's JSON (`pox-file-proof/v1`):
the file's path and sha256, the job's DSSE envelope line (the log leaf), and the note verifier key
of the session that signed the checkpoint with that session's evidence and binding. Then come the
inclusion hashes and the signed checkpoint. Checking it needs nothing else: the leaf hashes into
the checkpointed root, the checkpoint is signed by the session key, the session key and the
envelope key are each bound by TEE evidence, and the envelope's statement lists the file.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pox_executor.audit.evidence_check import check_evidence
from pox_executor.audit.findings import Report
from pox_executor.enclave.evidence import Evidence
from pox_executor.errors import PoxError, UsageError, VerificationError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.checkpoint import parse_signed_note, parse_vkey
from pox_executor.provenance.digests import Hasher
from pox_executor.provenance.dsse import verify_envelope
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.statement import Binding, parse_statement
from pox_executor.provenance.tlog_proof import format_proof, parse_proof, verify_proof

PROOF_FORMAT = "pox-file-proof/v1"


@dataclass(frozen=True)
class ProofTarget:
    path: str
    sha256: str
    index: int
    line: bytes


def _relative(file: Path, workdir: Path) -> str:
    full = file if file.is_absolute() else Path.cwd() / file
    try:
        return full.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError as exc:
        raise UsageError(f"{file} is not inside the run's working directory {workdir}") from exc


def find_producer(bundle: RunBundle, path: str, covered: int) -> ProofTarget:
    """The newest successful, checkpointed record whose subjects include `path`."""
    lines = read_log_lines(bundle.attestations_path).lines[:covered]
    for index in range(len(lines) - 1, -1, -1):
        envelope = json.loads(lines[index])
        statement = json.loads(base64.b64decode(envelope["payload"]))
        status = statement["predicate"]["buildDefinition"]["internalParameters"].get("status")
        if status != "succeeded":
            continue
        for subject in statement["subject"]:
            if subject["name"] == path:
                return ProofTarget(path, subject["digest"]["sha256"], index, lines[index])
    raise UsageError(
        f"{path} is not an output of any job recorded in run {bundle.run_id}",
        hint="`pox show` lists the run's jobs and outputs",
    )


def make_proof(bundle: RunBundle, file: Path) -> str:
    """The proof text for `file` (a path inside the run's working directory)."""
    path = _relative(file, bundle.workdir)
    checkpoint_text = bundle.checkpoint_path.read_text(encoding="utf-8")
    checkpoint, signatures = parse_signed_note(checkpoint_text)
    target = find_producer(bundle, path, checkpoint.size)
    lines = read_log_lines(bundle.attestations_path).lines[: checkpoint.size]
    tree = merkle.MerkleTree([merkle.leaf_hash(line) for line in lines])
    hashes = tree.inclusion_proof(target.index)
    signer_names = {s.name for s in signatures}
    sessions = [s for s in bundle.meta.get("sessions", []) if s.get("key_name") in signer_names]
    if not sessions:
        raise VerificationError("the checkpoint is not signed by any session of this run")
    extra = {
        "format": PROOF_FORMAT,
        "run_id": bundle.run_id,
        "file": {"path": target.path, "sha256": target.sha256},
        "envelope": target.line.decode("utf-8"),
        "sessions": [
            {k: s[k] for k in ("key_name", "vkey", "public_key", "evidence", "binding", "started")}
            for s in sessions
        ],
    }
    extra_bytes = json.dumps(extra, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return format_proof(target.index, hashes, checkpoint_text, extra_bytes)


def verify_file_proof(
    text: str, *, file: Path | None = None, allow_simulated: bool = False
) -> Report:
    """Check a proof with nothing else at hand; with `file`, also check its bytes."""
    report = Report(subject="proof")
    try:
        parsed = parse_proof(text)
        if parsed.extra is None:
            raise VerificationError("the proof has no 'extra' line with PoX data")
        extra = json.loads(parsed.extra)
        if extra.get("format") != PROOF_FORMAT:
            raise VerificationError(f"extra data is not {PROOF_FORMAT}")
        path = str(extra["file"]["path"])
        sha256 = str(extra["file"]["sha256"])
        line = str(extra["envelope"]).encode("utf-8")
        sessions = list(extra["sessions"])
    except (PoxError, ValueError, KeyError, TypeError) as exc:
        report.error("format", f"not a PoX file proof: {exc}")
        return report
    report.facts.update({"file": path, "sha256": sha256, "run_id": extra.get("run_id")})

    verifiers = {}
    for i, session in enumerate(sessions):
        try:
            name, key = parse_vkey(str(session["vkey"]))
            binding = Binding.from_json(session["binding"], where=f"session {i}")
            evidence = Evidence.from_json(session["evidence"])
        except (PoxError, KeyError, TypeError) as exc:
            report.error("session", f"malformed session {i}: {exc}")
            continue
        for problem in check_evidence(
            evidence,
            binding,
            signer_public_hex=key.hex(),
            allow_simulated=True,  # judged once below
            attested_at=session.get("started"),
        ):
            report.error("session-evidence", problem, f"session {name}")
        verifiers[name] = key
        if evidence.type == "sim-report":
            report.facts["simulated"] = True

    origin = f"pox/run/{extra.get('run_id')}"
    try:
        _, checkpoint = verify_proof(text, merkle.leaf_hash(line), verifiers, origin=origin)
        report.facts.update({"index": parsed.index, "tree_size": checkpoint.size})
    except PoxError as exc:
        report.error("inclusion", str(exc))

    try:
        envelope = json.loads(line)
        keyid = str(envelope["signatures"][0]["keyid"])
        statement = json.loads(base64.b64decode(envelope["payload"]))
        binding_raw = _evidence_annotations(statement)["binding"]
        keys = [bytes.fromhex(k) for k in binding_raw["public_keys"]]
        trusted = {PublicKey(k).keyid: PublicKey(k) for k in keys}
        payload = verify_envelope(envelope, trusted)
        job = parse_statement(payload, where="envelope")
        for problem in check_evidence(
            job.evidence,
            job.binding,
            signer_public_hex=trusted[keyid].hex() if keyid in trusted else "",
            allow_simulated=True,  # judged once below
            attested_at=statement["predicate"]["runDetails"]["metadata"].get("finishedOn"),
        ):
            report.error("evidence", problem, f"job {job.jobid} ({job.rule})")
        subjects = {s.name: s.sha256 for s in job.subjects}
        if subjects.get(path) != sha256:
            report.error("subject", f"the job's statement does not list {path} with that sha256")
        report.facts.update({"rule": job.rule, "jobid": job.jobid})
        if job.evidence.type == "sim-report":
            report.facts["simulated"] = True
    except (PoxError, ValueError, KeyError, TypeError, IndexError) as exc:
        report.error("envelope", f"the job envelope does not verify: {exc}")

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


def _evidence_annotations(statement: dict[str, Any]) -> dict[str, Any]:
    for byproduct in statement["predicate"]["runDetails"]["byproducts"]:
        if byproduct.get("name") == "pox:tee-evidence":
            annotations: dict[str, Any] = byproduct["annotations"]
            return annotations
    raise VerificationError("the statement carries no TEE evidence")
