"""The simulated evidence producer: honest `sim-report`s behind the `EvidenceProducer` protocol.

This module owns only the producer wrapper; the report format is `enclave.evidence`'s. A platform
key made fresh per producer signs each report, and the debug flag is always set: the evidence
proves nothing about confidentiality, and verifiers say so.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.enclave.evidence import Evidence, produce_sim_evidence


class SimProducer:
    """`sim-report` evidence for `measurement`, signed by a per-producer platform key."""

    evidence_type = "sim-report"

    def __init__(self, measurement: str, *, platform_key: Ed25519PrivateKey | None = None) -> None:
        self.measurement = measurement
        self.platform_key = platform_key or Ed25519PrivateKey.generate()

    def produce(self, report_data: bytes) -> Evidence:
        issued_at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        return produce_sim_evidence(
            self.platform_key,
            measurement=self.measurement,
            report_data=report_data,
            issued_at=issued_at,
        )
