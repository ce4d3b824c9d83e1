"""Simulated evidence (`sim-report`) in the verification pipeline: parsed, never trusted.

This module owns how a `sim-report` (format owned by `enclave.evidence`) becomes claims: its
self-signature is checked so corruption is detected, but no vendor vouches for it, its debug flag
is set, and the claims always carry the warning that it proves nothing about confidentiality.
"""

from __future__ import annotations

from datetime import datetime

from pox_executor.enclave.evidence import Evidence, parse_sim_report
from pox_executor.enclave.verifiers.claims import TeeClaims
from pox_executor.enclave.verifiers.report import SIMULATED_WARNING


def verify_sim(evidence: Evidence, at: datetime) -> TeeClaims:
    """Parse and self-check a sim-report; EvidenceError when it is malformed or corrupted."""
    del at  # a simulated report has no collateral window
    report = parse_sim_report(evidence)
    return TeeClaims(
        type="sim-report",
        measurements={"measurement": report.measurement},
        report_data=report.report_data,
        # The simulated TEE is a debug TEE by construction, whatever its body claims.
        debug=True,
        authentic=True,
        simulated=True,
        warnings=[SIMULATED_WARNING],
        details={
            "issued_at": report.issued_at,
            "platform_key": report.platform_key.hex(),
            "body_debug_flag": report.debug,
        },
    )
