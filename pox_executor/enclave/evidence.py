"""TEE evidence: the envelope every backend produces and the report-data binding.

Evidence is wrapped as `{type, value, aux}` in the spirit of RATS conceptual message wrappers:
`type` names the native format (`sgx-dcap-quote`, `tdx-quote`, `snp-report`, `sim-report`),
`value` is the native blob (base64 in JSON), `aux` holds what a verifier needs later (collateral,
certificate chains). The 64-byte report data is SHA-512 over the RFC 8785 canonical JSON of
`{nonce, public_keys, task_id, image_digest}`, so the hardware vouches for the signing key.

The simulated report (`sim-report`) is honest: a per-run key signs it, its debug flag is always
set, and it proves nothing about confidentiality. This module owns its byte format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pox_executor.errors import EvidenceError

EVIDENCE_TYPES = ("sgx-dcap-quote", "tdx-quote", "snp-report", "sim-report")
REPORT_DATA_SIZE = 64
SIM_PLATFORM = "pox-sim"


@dataclass(frozen=True)
class Evidence:
    """One piece of TEE evidence: a native blob plus what is needed to verify it later."""

    type: str
    value: bytes
    aux: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "value": base64.b64encode(self.value).decode("ascii"),
            "aux": dict(self.aux),
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str = "evidence") -> Evidence:
        if not isinstance(data, Mapping):
            raise EvidenceError(f"{where}: expected an object with type, value, aux")
        kind = data.get("type")
        if kind not in EVIDENCE_TYPES:
            raise EvidenceError(
                f"{where}: unknown evidence type {kind!r}; "
                f"expected one of {', '.join(EVIDENCE_TYPES)}"
            )
        raw = data.get("value")
        if not isinstance(raw, str):
            raise EvidenceError(f"{where}: field 'value' must be a base64 string")
        try:
            value = base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            raise EvidenceError(f"{where}: field 'value' is not valid base64 ({exc})") from exc
        aux = data.get("aux", {})
        if not isinstance(aux, Mapping):
            raise EvidenceError(f"{where}: field 'aux' must be an object")
        return cls(type=kind, value=value, aux=dict(aux))


class EvidenceProducer(Protocol):
    """Something that asks a TEE (real or simulated) for evidence over 64 bytes of report data."""

    evidence_type: str

    def produce(self, report_data: bytes) -> Evidence: ...


def report_data_for(
    *, nonce: str, public_keys: Sequence[str], task_id: str, image_digest: str
) -> bytes:
    """The 64 bytes a TEE report must carry to bind these keys to this task and image."""
    document = {
        "nonce": nonce,
        "public_keys": list(public_keys),
        "task_id": task_id,
        "image_digest": image_digest,
    }
    return hashlib.sha512(rfc8785.dumps(document)).digest()


# --- the simulated report -------------------------------------------------------------------


@dataclass(frozen=True)
class SimReport:
    """Parsed body of a `sim-report`. `debug` is always true for reports this code produces."""

    measurement: str
    report_data: bytes
    debug: bool
    issued_at: str
    platform_key: bytes


def produce_sim_evidence(
    platform_key: Ed25519PrivateKey, *, measurement: str, report_data: bytes, issued_at: str
) -> Evidence:
    """A simulated report: canonical JSON body, signed by the run's simulated platform key."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise EvidenceError(f"report data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
    public = platform_key.public_key().public_bytes_raw()
    body = rfc8785.dumps(
        {
            "version": 1,
            "platform": SIM_PLATFORM,
            "debug": True,
            "measurement": measurement,
            "report_data": report_data.hex(),
            "issued_at": issued_at,
            "platform_key": public.hex(),
        }
    )
    signature = platform_key.sign(body)
    return Evidence(
        type="sim-report",
        value=body,
        aux={"signature": base64.b64encode(signature).decode("ascii")},
    )


def parse_sim_report(evidence: Evidence) -> SimReport:
    """Parse a `sim-report` and check its self-signature; errors name the field."""
    if evidence.type != "sim-report":
        raise EvidenceError(f"expected a sim-report, got {evidence.type}")
    try:
        body = json.loads(evidence.value)
    except ValueError as exc:
        raise EvidenceError(f"sim-report: body is not JSON ({exc})") from exc
    if not isinstance(body, dict) or body.get("platform") != SIM_PLATFORM:
        raise EvidenceError("sim-report: body is not a pox-sim report")
    try:
        platform_key = bytes.fromhex(body["platform_key"])
        report_data = bytes.fromhex(body["report_data"])
        signature = base64.b64decode(str(evidence.aux["signature"]), validate=True)
        measurement = str(body["measurement"])
        issued_at = str(body["issued_at"])
        debug = bool(body["debug"])
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise EvidenceError(f"sim-report: missing or malformed field ({exc})") from exc
    if len(report_data) != REPORT_DATA_SIZE:
        raise EvidenceError(f"sim-report: report_data must be {REPORT_DATA_SIZE} bytes")
    try:
        Ed25519PublicKey.from_public_bytes(platform_key).verify(signature, evidence.value)
    except (InvalidSignature, ValueError) as exc:
        raise EvidenceError("sim-report: platform signature does not verify") from exc
    return SimReport(
        measurement=measurement,
        report_data=report_data,
        debug=debug,
        issued_at=issued_at,
        platform_key=platform_key,
    )
