"""Verification of TEE evidence: one pipeline for SGX DCAP, TDX, SEV-SNP and simulated reports.

This package owns everything that decides whether evidence is authentic, fresh, bound to the
presented key, not debug, and acceptable under an attestation policy. `verify_evidence` is the
entry point; `Policy`/`load_policy` the policy file; `EvidenceReport` the result. Modules:
`pipeline` (order of checks), `dcap` (Intel, through dcap-qvl), `collateral_cache` (offline DCAP
collateral keyed as a PCCS keys it), `snp` (AMD), `sim`, `policy`, `report`, `claims`. Pinned
vendor roots live in `roots/`.
"""

from __future__ import annotations

from pox_executor.enclave.verifiers.collateral_cache import CollateralCache
from pox_executor.enclave.verifiers.dcap import collateral_window, load_collateral
from pox_executor.enclave.verifiers.pipeline import verify_evidence
from pox_executor.enclave.verifiers.policy import (
    TCB_STATUS_ORDER,
    Policy,
    SnpPolicy,
    TdxPlatformPolicy,
    load_policy,
    parse_policy,
)
from pox_executor.enclave.verifiers.report import (
    CHECK_DEBUG,
    CHECK_FRESHNESS,
    CHECK_MEASUREMENT,
    CHECK_REPORT_DATA,
    CHECK_SIGNATURE,
    CHECK_SIMULATED,
    CHECK_TCB,
    SIMULATED_WARNING,
    EvidenceReport,
    Failure,
)
from pox_executor.enclave.verifiers.snp import parse_snp_report

__all__ = [
    "CHECK_DEBUG",
    "CHECK_FRESHNESS",
    "CHECK_MEASUREMENT",
    "CHECK_REPORT_DATA",
    "CHECK_SIGNATURE",
    "CHECK_SIMULATED",
    "CHECK_TCB",
    "SIMULATED_WARNING",
    "TCB_STATUS_ORDER",
    "CollateralCache",
    "EvidenceReport",
    "Failure",
    "Policy",
    "SnpPolicy",
    "TdxPlatformPolicy",
    "collateral_window",
    "load_collateral",
    "load_policy",
    "parse_policy",
    "parse_snp_report",
    "verify_evidence",
]
