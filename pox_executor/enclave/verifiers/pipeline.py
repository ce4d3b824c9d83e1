"""The one verification pipeline for every evidence type: `verify_evidence`.

This module owns the order and meaning of the checks: parse and authenticate (type-specific:
`dcap`, `snp`, `sim`), freshness at time `at`, report-data binding, debug, reference
measurements and TCB policy. It turns the type-specific `TeeClaims` into an `EvidenceReport`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pox_executor.enclave.evidence import REPORT_DATA_SIZE, Evidence
from pox_executor.enclave.verifiers.claims import TeeClaims
from pox_executor.enclave.verifiers.collateral_cache import CollateralCache
from pox_executor.enclave.verifiers.dcap import verify_dcap
from pox_executor.enclave.verifiers.policy import REVOKED, SNP_TCB_COMPONENTS, Policy
from pox_executor.enclave.verifiers.report import (
    CHECK_DEBUG,
    CHECK_MEASUREMENT,
    CHECK_REPORT_DATA,
    CHECK_SIMULATED,
    CHECK_TCB,
    EvidenceReport,
    Failure,
)
from pox_executor.enclave.verifiers.sim import verify_sim
from pox_executor.enclave.verifiers.snp import verify_snp
from pox_executor.errors import EvidenceError

_VERIFIERS: dict[str, Callable[[Evidence, datetime], TeeClaims]] = {
    "sgx-dcap-quote": verify_dcap,
    "tdx-quote": verify_dcap,
    "snp-report": verify_snp,
    "sim-report": verify_sim,
}

_DEBUG_BIT = {
    "sgx-dcap-quote": "the SGX ATTRIBUTES.DEBUG bit is set",
    "tdx-quote": "the TDX TD_ATTRIBUTES.DEBUG bit is set",
    "snp-report": "the SNP guest policy DEBUG bit (19) is set",
}


def verify_evidence(
    evidence: Evidence,
    *,
    policy: Policy | None = None,
    at: datetime | None = None,
    expected_report_data: bytes | None = None,
    allow_simulated: bool = False,
    collateral_cache: CollateralCache | None = None,
) -> EvidenceReport:
    """Verify one piece of evidence at time `at` (default now) and apply `policy`.

    A DCAP quote without archived collateral takes it from `collateral_cache` when one is given
    (`CollateralCache.complete`). Returns a report listing every failed check. Raises
    EvidenceError only when the evidence cannot be parsed at all or the material needed to check
    it (collateral, VCEK) is missing.
    """
    policy = policy or Policy()
    moment = datetime.now(UTC) if at is None else at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if expected_report_data is not None and len(expected_report_data) != REPORT_DATA_SIZE:
        raise EvidenceError(
            f"expected report data must be {REPORT_DATA_SIZE} bytes, "
            f"got {len(expected_report_data)}"
        )
    if collateral_cache is not None:
        evidence = collateral_cache.complete(evidence)
    verifier = _VERIFIERS.get(evidence.type)
    if verifier is None:
        raise EvidenceError(f"unknown evidence type {evidence.type!r}")
    claims = verifier(evidence, moment)
    failures = list(claims.failures)
    warnings = list(claims.warnings)

    if expected_report_data is not None and not hmac.compare_digest(
        claims.report_data, expected_report_data
    ):
        failures.append(
            Failure(
                CHECK_REPORT_DATA,
                f"the report data {claims.report_data.hex()[:32]}... does not equal the expected "
                f"{expected_report_data.hex()[:32]}...: the evidence does not bind the presented "
                "key, nonce, task and image",
            )
        )
    elif expected_report_data is None:
        warnings.append("report data not compared: no expected value was given")

    if claims.simulated:
        if not allow_simulated:
            failures.append(
                Failure(
                    CHECK_SIMULATED,
                    "simulated evidence (sim-report) proves nothing about confidentiality; it is "
                    "accepted only when simulated evidence is explicitly allowed",
                )
            )
    elif claims.debug and not policy.allow_debug:
        failures.append(
            Failure(
                CHECK_DEBUG,
                f"debug enclave: {_DEBUG_BIT.get(claims.type, 'debug flag set')}; a debug TEE's "
                "memory is readable by the host",
            )
        )

    failures.extend(_measurement_failures(claims, policy))
    if not claims.measurements or policy.measurements is None:
        warnings.append("measurements not compared: the policy pins no reference values")
    if claims.authentic:
        failures.extend(_tcb_failures(claims, policy))

    details = dict(claims.details)
    details["policy_source"] = policy.source
    return EvidenceReport(
        type=claims.type,
        measurements=dict(claims.measurements),
        tcb_status=claims.tcb_status,
        advisories=claims.advisories,
        debug=claims.debug,
        report_data=claims.report_data,
        verified_at=moment,
        authentic=claims.authentic,
        failures=tuple(failures),
        warnings=tuple(warnings),
        collateral_window=claims.window,
        simulated=claims.simulated,
        details=details,
    )


def _measurement_failures(claims: TeeClaims, policy: Policy) -> list[Failure]:
    if policy.measurements is None:
        return []
    references = policy.measurements.get(claims.type)
    if not references:
        return [
            Failure(
                CHECK_MEASUREMENT,
                f"the policy {policy.source} lists no reference measurements for {claims.type}",
            )
        ]
    for reference in references:
        if all(claims.measurements.get(name) == value for name, value in reference.items()):
            return []
    if len(references) == 1:
        mismatches = _mismatches(claims.measurements, references[0])
        return [
            Failure(
                CHECK_MEASUREMENT,
                "measurement does not match the reference value of the policy "
                f"{policy.source}: {mismatches}",
            )
        ]
    fields = sorted({name for reference in references for name in reference})
    got = ", ".join(f"{name}={claims.measurements.get(name, '?')}" for name in fields)
    return [
        Failure(
            CHECK_MEASUREMENT,
            f"measurement matches none of the {len(references)} reference values of the policy "
            f"{policy.source} (got {got})",
        )
    ]


def _mismatches(measured: Mapping[str, str], reference: Mapping[str, str]) -> str:
    parts = [
        f"{name} is {measured.get(name, '?')}, expected {value}"
        for name, value in reference.items()
        if measured.get(name) != value
    ]
    return "; ".join(parts)


def _tcb_failures(claims: TeeClaims, policy: Policy) -> list[Failure]:
    failures: list[Failure] = []
    status = claims.tcb_status
    if status is not None and not policy.tcb_acceptable(status):
        if status == REVOKED:
            reason = "the platform TCB is Revoked"
        else:
            reason = f"TCB status {status} is worse than the policy minimum {policy.min_tcb_status}"
        failures.append(Failure(CHECK_TCB, reason))
    if policy.allowed_advisories is not None:
        refused = [a for a in claims.advisories if a not in policy.allowed_advisories]
        if refused:
            failures.append(
                Failure(
                    CHECK_TCB,
                    f"advisories {', '.join(refused)} are not in the policy's allowed_advisories",
                )
            )
    if claims.type == "tdx-quote":
        for flag, allowed, label in (
            ("dynamic_platform", policy.tdx.allow_dynamic_platform, "a dynamic platform"),
            ("cached_keys", policy.tdx.allow_cached_keys, "cached platform keys"),
            ("smt_enabled", policy.tdx.allow_smt, "SMT enabled"),
        ):
            if not allowed and claims.details.get(flag) == "True":
                failures.append(
                    Failure(
                        CHECK_TCB,
                        f"the PCK certificate says the platform has {label}, which the policy "
                        "refuses",
                    )
                )
    if claims.type == "snp-report":
        reported = claims.details.get("reported_tcb", {})
        for name in SNP_TCB_COMPONENTS:
            minimum = policy.snp.min_tcb.get(name)
            if minimum is not None and int(reported.get(name, -1)) < minimum:
                failures.append(
                    Failure(
                        CHECK_TCB,
                        f"reported TCB {name}={reported.get(name)} is below the policy minimum "
                        f"{minimum}",
                    )
                )
        if not policy.snp.allow_smt and claims.details.get("smt_allowed"):
            failures.append(
                Failure(CHECK_TCB, "the SNP guest policy allows SMT, which the policy refuses")
            )
    return failures
