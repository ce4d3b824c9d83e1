"""The result of verifying one piece of TEE evidence: `EvidenceReport` and its failed checks.

This module owns the shape of a verification result shared by every evidence type: what was
measured, which TCB Intel or AMD vouched for, whether the TEE ran in debug mode, which report
data it carried, and every check that failed with a reason written for a person. It holds no
verification logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pox_executor.errors import EvidenceError

# Names of the checks, in the order the pipeline runs them.
CHECK_SIGNATURE = "signature"  # signature chain to the vendor root, collateral authenticity
CHECK_FRESHNESS = "freshness"  # verification time inside the collateral / certificate window
CHECK_REPORT_DATA = "report-data"  # the 64 report-data bytes bind the expected key and task
CHECK_DEBUG = "debug"  # the TEE was not launched in debug mode
CHECK_MEASUREMENT = "measurement"  # measurements match a reference value of the policy
CHECK_TCB = "tcb"  # TCB status, advisories and platform properties accepted by the policy
CHECK_SIMULATED = "simulated"  # simulated evidence was explicitly allowed

SIMULATED_WARNING = (
    "simulated TEE evidence (sim-report): it proves nothing about confidentiality or about "
    "the integrity of execution; no hardware vouches for the measurement or the key"
)


@dataclass(frozen=True)
class Failure:
    """One failed check: `check` is one of the CHECK_* names, `reason` says precisely why."""

    check: str
    reason: str

    def __str__(self) -> str:
        return f"{self.check}: {self.reason}"


@dataclass(frozen=True)
class EvidenceReport:
    """What verification established about one piece of evidence.

    `measurements` maps a field name to lowercase hex: `mrenclave`/`mrsigner` (SGX), `mrtd`,
    `rtmr0`..`rtmr3` (TDX), `measurement` (SNP and sim). `tcb_status` is Intel's status string
    (`UpToDate`, `SWHardeningNeeded`, ...) for DCAP evidence and None for SNP and sim, whose TCB
    is given as component versions in `details`. `authentic` is true when the signature chain to
    the vendor root verified; `failures` lists every check that did not pass; `ok` is true only
    when there are none.
    """

    type: str
    measurements: dict[str, str]
    tcb_status: str | None
    advisories: tuple[str, ...]
    debug: bool
    report_data: bytes
    verified_at: datetime
    authentic: bool
    failures: tuple[Failure, ...] = ()
    warnings: tuple[str, ...] = ()
    collateral_window: tuple[datetime, datetime] | None = None
    simulated: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def failed(self, check: str) -> tuple[Failure, ...]:
        """The failures of one check (empty when it passed)."""
        return tuple(f for f in self.failures if f.check == check)

    def raise_for_failures(self) -> None:
        """Raise EvidenceError listing every failed check; do nothing when the report is ok."""
        if self.failures:
            reasons = "; ".join(str(f) for f in self.failures)
            raise EvidenceError(f"{self.type} evidence rejected: {reasons}")

    def to_json(self) -> dict[str, Any]:
        window = None
        if self.collateral_window is not None:
            window = {
                "not_before": _iso(self.collateral_window[0]),
                "not_after": _iso(self.collateral_window[1]),
            }
        return {
            "type": self.type,
            "ok": self.ok,
            "authentic": self.authentic,
            "simulated": self.simulated,
            "measurements": dict(self.measurements),
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
            "debug": self.debug,
            "report_data": self.report_data.hex(),
            "verified_at": _iso(self.verified_at),
            "collateral_window": window,
            "failures": [{"check": f.check, "reason": f.reason} for f in self.failures],
            "warnings": list(self.warnings),
            "details": self.details,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
