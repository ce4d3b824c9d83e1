"""Resource policies of the key broker: which attested TEEs may read which resources.

This module owns the resource-policy document (JSON, `docs/sms.md`): `resources` (glob patterns
over `repository/type/tag`), `allow_simulated` (simulated evidence is refused unless this is
true), and `attestation`, an attestation policy in the existing format of
`docs/attestation-policy.md` (measurements, TCB, advisories, debug), applied by PoX's own
verifier pipeline. A resource is released when at least one policy that names it accepts the
evidence; no policy naming it means no release.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import (
    CHECK_DEBUG,
    EvidenceReport,
    Failure,
    Policy,
    parse_policy,
    verify_evidence,
)
from pox_executor.errors import EvidenceError, PoxError

RESOURCE_POLICY_VERSION = 1
POLICY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KEYS = {"version", "description", "resources", "allow_simulated", "attestation"}


class PolicyError(PoxError):
    """A resource-policy document is malformed; the message names the field."""


@dataclass(frozen=True)
class ResourcePolicy:
    """One named resource policy."""

    policy_id: str
    resources: tuple[str, ...]
    allow_simulated: bool
    attestation: Policy
    document: Mapping[str, Any]

    def covers(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.resources)

    def evaluate(self, evidence: Evidence, expected_report_data: bytes) -> EvidenceReport:
        """Verify `evidence` under this policy (a sim-report is a debug TEE by construction)."""
        report = verify_evidence(
            evidence,
            policy=self.attestation,
            expected_report_data=expected_report_data,
            allow_simulated=self.allow_simulated,
        )
        if report.simulated and self.allow_simulated and not self.attestation.allow_debug:
            extra = Failure(
                CHECK_DEBUG,
                "simulated evidence is a debug TEE (the host reads its memory); this policy "
                "allows simulated evidence but not debug (set attestation.allow_debug)",
            )
            report = _with_failure(report, extra)
        return report


def _with_failure(report: EvidenceReport, failure: Failure) -> EvidenceReport:
    from dataclasses import replace

    return replace(report, failures=(*report.failures, failure))


def check_policy_id(policy_id: str) -> str:
    if not POLICY_ID.match(policy_id):
        raise PolicyError(f"policy id {policy_id!r}: expected 1-64 characters of A-Z a-z 0-9 . _ -")
    return policy_id


def parse_resource_policy(
    policy_id: str, data: Any, *, source: str | None = None
) -> ResourcePolicy:
    """Validate a resource-policy document; PolicyError names the field and what was expected."""
    where = source or f"policy {policy_id}"
    check_policy_id(policy_id)
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: expected a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise PolicyError(
            f"{where}: unknown field {unknown[0]!r}; expected only {', '.join(sorted(_KEYS))}"
        )
    if data.get("version", RESOURCE_POLICY_VERSION) != RESOURCE_POLICY_VERSION:
        raise PolicyError(f"{where}: field 'version': expected {RESOURCE_POLICY_VERSION}")
    if not isinstance(data.get("description", ""), str):
        raise PolicyError(f"{where}: field 'description': expected a string")
    resources = data.get("resources")
    if (
        not isinstance(resources, list)
        or not resources
        or not all(isinstance(r, str) and r.count("/") == 2 for r in resources)
    ):
        raise PolicyError(
            f"{where}: field 'resources': expected a non-empty list of "
            "'repository/type/tag' patterns (glob * and ? allowed)"
        )
    allow_simulated = data.get("allow_simulated", False)
    if not isinstance(allow_simulated, bool):
        raise PolicyError(f"{where}: field 'allow_simulated': expected true or false")
    try:
        attestation = parse_policy(data.get("attestation", {}), source=f"{where}: attestation")
    except EvidenceError as exc:
        raise PolicyError(str(exc)) from exc
    return ResourcePolicy(
        policy_id=policy_id,
        resources=tuple(resources),
        allow_simulated=allow_simulated,
        attestation=attestation,
        document=json.loads(json.dumps(data)),
    )
