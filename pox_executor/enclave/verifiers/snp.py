"""AMD SEV-SNP evidence (`snp-report`): report layout, ARK -> ASK -> VCEK chain, report signature.

This module owns the SNP part of the pipeline: the attestation report byte layout (version 2 and
later, 1184 bytes), the archived certificate encodings (`aux["vcek"]`: the VCEK certificate as PEM
text, base64 DER also accepted; `aux["cert_chain"]`: PEM text with ASK then ARK, the format AMD's
KDS `cert_chain` endpoint serves), the pinned AMD root keys (ARK), the VCEK <-> report consistency
(chip id, TCB component versions) and the certificate validity window used for freshness.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers.claims import TeeClaims, iso
from pox_executor.enclave.verifiers.report import CHECK_FRESHNESS, CHECK_SIGNATURE, Failure
from pox_executor.errors import EvidenceError

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SIG_ALGO_ECDSA_P384_SHA384 = 1
POLICY_SMT = 1 << 16
POLICY_DEBUG = 1 << 19

# AMD VCEK certificate extensions (AMD SEV-SNP VCEK specification).
OID_BL_SPL = "1.3.6.1.4.1.3704.1.3.1"
OID_TEE_SPL = "1.3.6.1.4.1.3704.1.3.2"
OID_SNP_SPL = "1.3.6.1.4.1.3704.1.3.3"
OID_UCODE_SPL = "1.3.6.1.4.1.3704.1.3.8"
OID_HWID = "1.3.6.1.4.1.3704.1.4"
OID_PRODUCT_NAME = "1.3.6.1.4.1.3704.1.2"

# The pinned AMD Root Keys, by product line (see roots/README.md for their provenance).
_PINNED_ARKS = {
    "Milan": "roots/amd-ark-milan.pem",
    "Genoa": "roots/amd-ark-genoa.pem",
    "Turin": "roots/amd-ark-turin.pem",
}
# AMD SEV signing keys (ASK), by product line: intermediates, checked against the pinned ARK like
# any ASK; used when evidence carries only its VCEK (CoCo's snp attester often sends no chain).
_PINNED_ASKS = {
    "Milan": "roots/amd-ask-milan.pem",
    "Genoa": "roots/amd-ask-genoa.pem",
    "Turin": "roots/amd-ask-turin.pem",
}
# Byte positions of the TCB components in an 8-byte TCB_VERSION. Turin adds an FMC component
# and moves the others (SEV-SNP ABI specification, TCB_VERSION structure).
_TCB_LAYOUT = {
    "Milan": {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    "Genoa": {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    "Turin": {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7},
}


@dataclass(frozen=True)
class SnpReport:
    """The fields of an SNP attestation report this pipeline uses."""

    version: int
    guest_svn: int
    policy: int
    vmpl: int
    signature_algo: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    reported_tcb: dict[str, int]
    chip_id: bytes
    signed_bytes: bytes
    signature_r: int
    signature_s: int

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)


def parse_snp_report(blob: bytes, *, product: str = "Milan") -> SnpReport:
    """Parse an SEV-SNP attestation report (little-endian fields, signature at 0x2A0).

    `product` (Milan, Genoa, Turin) selects the layout of the reported TCB version.
    """
    if len(blob) < REPORT_SIZE:
        raise EvidenceError(f"snp-report: expected {REPORT_SIZE} bytes, got {len(blob)}")
    version = int.from_bytes(blob[0:4], "little")
    if version < 2:
        raise EvidenceError(f"snp-report: unsupported report version {version} (need 2 or later)")

    def u32(offset: int) -> int:
        return int.from_bytes(blob[offset : offset + 4], "little")

    tcb = blob[0x180:0x188]
    return SnpReport(
        version=version,
        guest_svn=u32(0x04),
        policy=int.from_bytes(blob[0x08:0x10], "little"),
        vmpl=u32(0x30),
        signature_algo=u32(0x34),
        report_data=bytes(blob[0x50:0x90]),
        measurement=bytes(blob[0x90:0xC0]),
        host_data=bytes(blob[0xC0:0xE0]),
        reported_tcb={
            name: tcb[index]
            for name, index in _TCB_LAYOUT.get(product, _TCB_LAYOUT["Milan"]).items()
        },
        chip_id=bytes(blob[0x1A0:0x1E0]),
        signed_bytes=bytes(blob[:SIGNED_SIZE]),
        signature_r=int.from_bytes(blob[0x2A0 : 0x2A0 + 72], "little"),
        signature_s=int.from_bytes(blob[0x2A0 + 72 : 0x2A0 + 144], "little"),
    )


def pinned_arks() -> dict[str, x509.Certificate]:
    """The AMD Root Key certificates this verifier trusts, by product line."""
    result = {}
    package = resources.files("pox_executor.enclave.verifiers")
    for product, path in _PINNED_ARKS.items():
        result[product] = x509.load_pem_x509_certificate(package.joinpath(path).read_bytes())
    return result


def shipped_ask_chain(vcek: x509.Certificate) -> str | None:
    """PEM of the shipped ASK that issued `vcek` followed by its ARK, or None if none did."""
    issuer = vcek.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(issuer[0].value) if issuer else ""
    product = name.removeprefix("SEV-")
    if product not in _PINNED_ASKS:
        return None
    package = resources.files("pox_executor.enclave.verifiers")
    ask = package.joinpath(_PINNED_ASKS[product]).read_text(encoding="ascii")
    ark = package.joinpath(_PINNED_ARKS[product]).read_text(encoding="ascii")
    return ask.strip() + "\n" + ark.strip() + "\n"


def load_certificates(raw: Any, *, where: str) -> list[x509.Certificate]:
    """Certificates from PEM text, or from base64 of DER (one certificate)."""
    if isinstance(raw, (bytes, bytearray)):
        data = bytes(raw)
    elif isinstance(raw, str):
        data = raw.encode("ascii", errors="replace")
    else:
        raise EvidenceError(f"{where}: expected PEM text or base64 DER, got {type(raw).__name__}")
    with warnings.catch_warnings():
        # AMD's VCEKs carry serial numbers that RFC 5280 disallows; cryptography only warns.
        warnings.simplefilter("ignore")
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                return x509.load_pem_x509_certificates(data)
            try:
                der = base64.b64decode(data, validate=True)
            except binascii.Error:
                der = data
            return [x509.load_der_x509_certificate(der)]
        except ValueError as exc:
            raise EvidenceError(f"{where}: not a certificate ({exc})") from exc


def verify_snp(evidence: Evidence, at: datetime) -> TeeClaims:
    """Parse an SNP report, check its VCEK chain to a pinned ARK and its signature at `at`."""
    parse_snp_report(evidence.value)  # malformed reports fail before the material is read
    aux: Mapping[str, Any] = evidence.aux
    if "vcek" not in aux or "cert_chain" not in aux:
        missing = "vcek" if "vcek" not in aux else "cert_chain"
        raise EvidenceError(
            f"snp-report: no aux.{missing} archived with the evidence",
            hint="pass the VCEK and the ASK/ARK chain with --vcek FILE --cert-chain FILE",
        )
    vceks = load_certificates(aux["vcek"], where="aux.vcek")
    chain = load_certificates(aux["cert_chain"], where="aux.cert_chain")
    if len(vceks) != 1:
        raise EvidenceError(f"aux.vcek: expected one certificate, got {len(vceks)}")
    if len(chain) != 2:
        raise EvidenceError(
            f"aux.cert_chain: expected ASK then ARK (2 certificates), got {len(chain)}"
        )
    vcek, (ask, ark) = vceks[0], chain

    product = _product_of(ark)
    report = parse_snp_report(evidence.value, product=product)
    claims = TeeClaims(
        type="snp-report",
        measurements={"measurement": report.measurement.hex(), "host_data": report.host_data.hex()},
        report_data=report.report_data,
        debug=report.debug,
        authentic=False,
        details={
            "report_version": report.version,
            "guest_policy": f"{report.policy:#x}",
            "smt_allowed": bool(report.policy & POLICY_SMT),
            "vmpl": report.vmpl,
            "guest_svn": report.guest_svn,
            "reported_tcb": dict(report.reported_tcb),
            "chip_id": report.chip_id.hex(),
        },
    )
    claims.details["product"] = product
    failures = claims.failures
    failures.extend(_chain_failures(vcek, ask, ark))
    failures.extend(_consistency_failures(vcek, report))
    if report.signature_algo != SIG_ALGO_ECDSA_P384_SHA384:
        failures.append(
            Failure(CHECK_SIGNATURE, f"unsupported signature algorithm {report.signature_algo}")
        )
    else:
        public = vcek.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            failures.append(Failure(CHECK_SIGNATURE, "the VCEK does not hold an EC P-384 key"))
        else:
            signature = utils.encode_dss_signature(report.signature_r, report.signature_s)
            try:
                public.verify(signature, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
            except InvalidSignature:
                failures.append(
                    Failure(
                        CHECK_SIGNATURE,
                        "the report signature (ECDSA P-384 over bytes 0x000-0x29f) does not "
                        "verify with the VCEK",
                    )
                )
    claims.authentic = not failures

    not_before = max((c.not_valid_before_utc, _cn(c)) for c in (vcek, ask, ark))
    not_after = min((c.not_valid_after_utc, _cn(c)) for c in (vcek, ask, ark))
    claims.window = (not_before[0], not_after[0])
    claims.details["collateral_window"] = {
        "not_before": iso(not_before[0]),
        "not_before_source": f"certificate {not_before[1]!r} notBefore",
        "not_after": iso(not_after[0]),
        "not_after_source": f"certificate {not_after[1]!r} notAfter",
    }
    if at < not_before[0]:
        failures.append(
            Failure(
                CHECK_FRESHNESS,
                f"verification time {iso(at)} is before certificate {not_before[1]!r} is valid "
                f"(notBefore {iso(not_before[0])})",
            )
        )
    elif at > not_after[0]:
        failures.append(
            Failure(
                CHECK_FRESHNESS,
                f"certificate {not_after[1]!r} expired at {iso(not_after[0])}, before the "
                f"verification time {iso(at)}",
            )
        )
    return claims


def _chain_failures(
    vcek: x509.Certificate, ask: x509.Certificate, ark: x509.Certificate
) -> list[Failure]:
    failures: list[Failure] = []
    pinned = pinned_arks()
    ark_der = ark.public_bytes(Encoding.DER)
    if not any(p.public_bytes(Encoding.DER) == ark_der for p in pinned.values()):
        failures.append(
            Failure(
                CHECK_SIGNATURE,
                f"the ARK {_cn(ark)!r} in aux.cert_chain is not a pinned AMD root "
                f"(pinned: {', '.join('ARK-' + p for p in pinned)})",
            )
        )
        return failures
    for child, parent, label in (
        (ark, ark, "ARK self-signature"),
        (ask, ark, "ASK signed by ARK"),
        (vcek, ask, "VCEK signed by ASK"),
    ):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            failures.append(
                Failure(
                    CHECK_SIGNATURE,
                    f"{label}: certificate {_cn(child)!r} is not validly signed by "
                    f"{_cn(parent)!r} ({exc or type(exc).__name__})",
                )
            )
    return failures


def _consistency_failures(vcek: x509.Certificate, report: SnpReport) -> list[Failure]:
    failures: list[Failure] = []
    hwid = _extension_bytes(vcek, OID_HWID)
    if hwid is not None and any(report.chip_id) and hwid != report.chip_id:
        failures.append(
            Failure(
                CHECK_SIGNATURE,
                f"the VCEK was issued for chip {hwid.hex()[:16]}..., the report names chip "
                f"{report.chip_id.hex()[:16]}...",
            )
        )
    for name, oid in (
        ("bootloader", OID_BL_SPL),
        ("tee", OID_TEE_SPL),
        ("snp", OID_SNP_SPL),
        ("microcode", OID_UCODE_SPL),
    ):
        value = _extension_int(vcek, oid)
        if value is not None and value != report.reported_tcb[name]:
            failures.append(
                Failure(
                    CHECK_SIGNATURE,
                    f"the VCEK was issued for TCB {name}={value}, the report claims "
                    f"{name}={report.reported_tcb[name]}",
                )
            )
    return failures


def _product_of(ark: x509.Certificate) -> str:
    name = _cn(ark)
    return name.removeprefix("ARK-") if name.startswith("ARK-") else name


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _extension_bytes(cert: x509.Certificate, oid: str) -> bytes | None:
    for extension in cert.extensions:
        if extension.oid.dotted_string == oid and isinstance(
            extension.value, x509.UnrecognizedExtension
        ):
            return bytes(extension.value.value)
    return None


def _extension_int(cert: x509.Certificate, oid: str) -> int | None:
    """A small DER INTEGER extension value (AMD encodes SPLs as INTEGER)."""
    raw = _extension_bytes(cert, oid)
    if raw is None or len(raw) < 3 or raw[0] != 0x02 or raw[1] != len(raw) - 2:
        return None
    return int.from_bytes(raw[2:], "big", signed=True)
