"""Checks one piece of recorded TEE evidence against the binding a statement or session declares.

Shared by `verify` (every job and session of a run) and `proof` (one job, offline): the report
data must equal SHA-512 of the binding, the binding must name the key that signed, and the
evidence must pass the verifier pipeline (simulated evidence only when explicitly allowed).
"""

from __future__ import annotations

from datetime import datetime

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import verify_evidence
from pox_executor.enclave.verifiers.claims import parse_time
from pox_executor.errors import PoxError
from pox_executor.provenance.statement import Binding


def check_evidence(
    evidence: Evidence,
    binding: Binding,
    *,
    signer_public_hex: str,
    allow_simulated: bool,
    attested_at: str | None,
) -> list[str]:
    """Problems found (empty when the evidence binds the signer and passes verification)."""
    problems: list[str] = []
    if signer_public_hex not in binding.public_keys:
        problems.append(
            f"the evidence binds keys {', '.join(k[:16] for k in binding.public_keys)}..., "
            f"not the key {signer_public_hex[:16]}... that signed"
        )
    expected = binding.report_data()
    at: datetime | None = None
    if attested_at:
        try:
            at = parse_time(attested_at)
        except (ValueError, PoxError):
            problems.append(f"attestation time {attested_at!r} is not an RFC 3339 time")
    try:
        report = verify_evidence(
            evidence, at=at, expected_report_data=expected, allow_simulated=allow_simulated
        )
    except PoxError as exc:
        return [*problems, str(exc)]
    problems.extend(f"{f.check}: {f.reason}" for f in report.failures)
    return problems
