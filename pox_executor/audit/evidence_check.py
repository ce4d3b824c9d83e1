"""Checks one piece of recorded TEE evidence against the binding a statement or session declares.

Shared by `verify` (every job and session of a run) and `proof` (one job, offline): the report
data must equal SHA-512 of the binding, the binding must name the key that signed, the evidence
must pass the verifier pipeline under the attestation policy (simulated evidence only when
explicitly allowed), and the measurement it reports must be the one the statement's builder id
names (`...@sha256:<measurement>`), so a record cannot claim one image while attested as another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import Policy, verify_evidence
from pox_executor.enclave.verifiers.claims import parse_time
from pox_executor.errors import PoxError
from pox_executor.provenance.statement import Binding

BUILDER_MEASUREMENT_MARK = "@sha256:"


@dataclass
class EvidenceCheck:
    """Problems found (empty when everything holds) and the measurements the evidence reports."""

    problems: list[str] = field(default_factory=list)
    measurements: dict[str, str] = field(default_factory=dict)
    measurement_problem: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.measurement_problem is None


def check_evidence(
    evidence: Evidence,
    binding: Binding,
    *,
    signer_public_hex: str,
    allow_simulated: bool,
    attested_at: str | None,
    policy: Policy | None = None,
    builder_id: str | None = None,
) -> EvidenceCheck:
    """Check `evidence` binds the signer through `binding`, under `policy`, for `builder_id`."""
    result = EvidenceCheck()
    if signer_public_hex not in binding.public_keys:
        result.problems.append(
            f"the evidence binds keys {', '.join(k[:16] for k in binding.public_keys)}..., "
            f"not the key {signer_public_hex[:16]}... that signed"
        )
    expected = binding.report_data()
    at: datetime | None = None
    if attested_at:
        try:
            at = parse_time(attested_at)
        except (ValueError, PoxError):
            result.problems.append(f"attestation time {attested_at!r} is not an RFC 3339 time")
    try:
        report = verify_evidence(
            evidence,
            policy=policy,
            at=at,
            expected_report_data=expected,
            allow_simulated=allow_simulated,
        )
    except PoxError as exc:
        result.problems.append(str(exc))
        return result
    result.problems.extend(f"{f.check}: {f.reason}" for f in report.failures)
    result.measurements = dict(report.measurements)
    if builder_id and BUILDER_MEASUREMENT_MARK in builder_id:
        named = builder_id.rsplit(BUILDER_MEASUREMENT_MARK, 1)[1].lower()
        if named not in result.measurements.values():
            got = ", ".join(f"{k}={v[:16]}..." for k, v in sorted(result.measurements.items()))
            result.measurement_problem = (
                f"the builder id names measurement {named[:16]}..., but the evidence reports "
                f"{got or 'none'}: the record claims another image than the one attested"
            )
    return result
