"""The evidence a KBS `/attest` carries, in the shapes unmodified CoCo guests send, verified by PoX.

This module owns the translation from Confidential Containers' attester JSON (guest-components
`attestation-agent/attester`, as Trustee's verifiers read it) to PoX's `Evidence`, and the
attest-time verification the broker runs on it:

- `tdx`: `{"cc_eventlog": base64 | null, "quote": base64}` (the event log is kept in `aux` but
  not replayed: PoX policies pin MRTD/RTMRs, not log entries);
- `sgx`: `{"quote": base64}` (the occlum/DCAP attester);
- `snp`: `{"attestation_report": {...}, "cert_chain": [{"cert_type": "VCEK", "data": [bytes]}]
  | null}`, the serde form of the `sev` crate's `AttestationReport` and `CertTableEntry`; the
  report is rebuilt byte for byte (reserved bytes are zero, as the `sev` crate writes them) so
  its signature is checked over the bytes the PSP signed;
- PoX's own envelope `{type, value, aux}` for every TEE, and the only form for `sample`, because
  Trustee's sample evidence (`{"svn", "report_data"}`) is signed by nothing.

A DCAP quote without collateral takes it from the broker's collateral cache
(`enclave.verifiers.collateral_cache`); an SNP chain without ASK/ARK uses the shipped AMD ASK of
the VCEK's product line, still checked against the pinned ARK.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import (
    CollateralCache,
    EvidenceReport,
    Policy,
    verify_evidence,
)
from pox_executor.enclave.verifiers.snp import REPORT_SIZE, SIGNED_SIZE, shipped_ask_chain
from pox_executor.errors import EvidenceError
from pox_executor.sms.protocol import TEE_EVIDENCE_TYPES

# Where the broker keeps its DCAP collateral cache, under its state directory.
COLLATERAL_DIR = "collateral"

# The `sev` crate's CertType names for the entries of an SNP certificate table.
_CERT_TYPES = ("ARK", "ASK", "VCEK", "VLEK", "CRL", "Empty")


def evidence_from_kbs(tee: str, primary: Any, *, where: str = "primary_evidence") -> Evidence:
    """PoX `Evidence` from a KBS `tee-evidence.primary_evidence` for session TEE `tee`."""
    if isinstance(primary, Mapping) and "type" in primary and "value" in primary:
        return Evidence.from_json(primary, where=where)
    if not isinstance(primary, Mapping):
        raise EvidenceError(f"{where}: expected a JSON object, got {type(primary).__name__}")
    if tee in ("sgx", "tdx"):
        return _dcap_evidence(tee, primary, where)
    if tee == "snp":
        return snp_evidence(primary, where=where)
    if tee == "sample" and {"svn", "report_data"} <= set(primary):
        raise EvidenceError(
            f"{where}: Trustee's sample evidence is signed by nothing; PoX accepts only its own "
            "sim-report for tee 'sample' (pox sms fetch --producer sim)"
        )
    raise EvidenceError(
        f"{where}: not a {tee} evidence PoX knows; expected PoX's envelope (type, value, aux)"
        + (
            f" or the CoCo {tee} attester's JSON"
            if tee in TEE_EVIDENCE_TYPES and tee != "sample"
            else ""
        )
    )


def _dcap_evidence(tee: str, primary: Mapping[str, Any], where: str) -> Evidence:
    quote = primary.get("quote")
    if not isinstance(quote, str) or not quote:
        raise EvidenceError(f"{where}: a CoCo {tee} evidence needs 'quote' (base64 of the quote)")
    aux: dict[str, Any] = {"coco_shape": f"trustee-{tee}"}
    if isinstance(primary.get("cc_eventlog"), str):
        aux["cc_eventlog"] = primary["cc_eventlog"]
    if "collateral" in primary:  # a PoX guest may archive its own (QuoteCollateralV3 JSON)
        aux["collateral"] = primary["collateral"]
    return Evidence(TEE_EVIDENCE_TYPES[tee], _b64(quote, f"{where}.quote"), aux)


def snp_evidence(primary: Mapping[str, Any], *, where: str = "primary_evidence") -> Evidence:
    """An `snp-report` Evidence from CoCo's `{attestation_report, cert_chain}` JSON."""
    report = primary.get("attestation_report")
    if not isinstance(report, Mapping):
        raise EvidenceError(f"{where}.attestation_report: expected the SNP report object")
    blob = snp_report_bytes(report, where=f"{where}.attestation_report")
    chain = primary.get("cert_chain")
    certificates: dict[str, x509.Certificate] = {}
    if chain is not None:
        if not isinstance(chain, list):
            raise EvidenceError(f"{where}.cert_chain: expected a list of certificate entries")
        for index, entry in enumerate(chain):
            at = f"{where}.cert_chain[{index}]"
            if not isinstance(entry, Mapping):
                raise EvidenceError(f"{at}: expected an object with cert_type and data")
            kind = entry.get("cert_type")
            if isinstance(kind, Mapping) or kind not in _CERT_TYPES:
                continue  # OTHER(guid) entries and unknown types are not part of the chain
            if kind in ("CRL", "Empty"):
                continue
            der = _byte_list(entry.get("data"), f"{at}.data", None)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # AMD VCEK serials trip an RFC 5280 warning
                    certificates[str(kind)] = x509.load_der_x509_certificate(der)
            except ValueError as exc:
                raise EvidenceError(f"{at}.data: not a DER certificate ({exc})") from exc
    if "VLEK" in certificates and "VCEK" not in certificates:
        raise EvidenceError(
            f"{where}.cert_chain: the report is signed by a VLEK; PoX verifies VCEK-signed "
            "reports only (the ASVK chain is not pinned)"
        )
    if "VCEK" not in certificates:
        raise EvidenceError(
            f"{where}.cert_chain: no VCEK entry; the broker has no AMD KDS access to fetch it",
            hint="the guest must send the extended report's certificate table (VCEK)",
        )
    vcek = certificates["VCEK"]
    aux: dict[str, Any] = {"coco_shape": "trustee-snp", "vcek": _pem(vcek)}
    if "ASK" in certificates and "ARK" in certificates:
        aux["cert_chain"] = _pem(certificates["ASK"]) + _pem(certificates["ARK"])
    else:
        shipped = shipped_ask_chain(vcek)
        if shipped is None:
            raise EvidenceError(
                f"{where}.cert_chain: no ASK/ARK entries and the VCEK's issuer is not an AMD "
                "product line PoX ships an ASK for (Milan, Genoa, Turin)"
            )
        aux["cert_chain"] = shipped
        aux["cert_chain_source"] = "shipped ASK, pinned ARK"
    return Evidence("snp-report", blob, aux)


def snp_report_bytes(report: Mapping[str, Any], *, where: str = "attestation_report") -> bytes:
    """The 1184-byte SNP report from the `sev` crate's serde JSON of `AttestationReport`."""
    blob = bytearray(REPORT_SIZE)

    def put(offset: int, data: bytes) -> None:
        blob[offset : offset + len(data)] = data

    def integer(name: str, size: int, *, optional: bool = False) -> int:
        value = report.get(name)
        if value is None and optional:
            return 0
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 256**size:
            raise EvidenceError(f"{where}.{name}: expected an integer of {size} bytes")
        return value

    def raw(name: str, size: int) -> bytes:
        return _byte_list(report.get(name), f"{where}.{name}", size)

    tcb_names = ("current_tcb", "reported_tcb", "committed_tcb", "launch_tcb")
    turin = any(
        isinstance(report.get(n), Mapping) and report[n].get("fmc") is not None for n in tcb_names
    )

    def tcb(name: str) -> bytes:
        value = report.get(name)
        if not isinstance(value, Mapping):
            raise EvidenceError(
                f"{where}.{name}: expected {{fmc, bootloader, tee, snp, microcode}}"
            )
        parts = {}
        for part in ("fmc", "bootloader", "tee", "snp", "microcode"):
            item = value.get(part)
            if part == "fmc" and item is None:
                item = 0
            if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= 255:
                raise EvidenceError(f"{where}.{name}.{part}: expected an integer 0-255")
            parts[part] = item
        if turin:
            order = [parts["fmc"], parts["bootloader"], parts["tee"], parts["snp"], 0, 0, 0]
        else:
            order = [parts["bootloader"], parts["tee"], 0, 0, 0, 0, parts["snp"]]
        return bytes([*order, parts["microcode"]])

    def version(name: str) -> bytes:
        value = report.get(name)
        if not isinstance(value, Mapping):
            raise EvidenceError(f"{where}.{name}: expected {{major, minor, build}}")
        out = []
        for part in ("build", "minor", "major"):
            item = value.get(part)
            if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= 255:
                raise EvidenceError(f"{where}.{name}.{part}: expected an integer 0-255")
            out.append(item)
        return bytes(out)

    report_version = integer("version", 4)
    if report_version < 2:
        raise EvidenceError(f"{where}.version: unsupported report version {report_version}")
    put(0x00, report_version.to_bytes(4, "little"))
    put(0x04, integer("guest_svn", 4).to_bytes(4, "little"))
    put(0x08, integer("policy", 8).to_bytes(8, "little"))
    put(0x10, raw("family_id", 16))
    put(0x20, raw("image_id", 16))
    put(0x30, integer("vmpl", 4).to_bytes(4, "little"))
    put(0x34, integer("sig_algo", 4).to_bytes(4, "little"))
    put(0x38, tcb("current_tcb"))
    put(0x40, integer("plat_info", 8).to_bytes(8, "little"))
    put(0x48, integer("key_info", 4).to_bytes(4, "little"))
    put(0x50, raw("report_data", 64))
    put(0x90, raw("measurement", 48))
    put(0xC0, raw("host_data", 32))
    put(0xE0, raw("id_key_digest", 48))
    put(0x110, raw("author_key_digest", 48))
    put(0x140, raw("report_id", 32))
    put(0x160, raw("report_id_ma", 32))
    put(0x180, tcb("reported_tcb"))
    if report_version >= 3:
        put(0x188, bytes([integer(n, 1, optional=True) for n in ("cpuid_fam_id", "cpuid_mod_id")]))
        put(0x18A, bytes([integer("cpuid_step", 1, optional=True)]))
    put(0x1A0, raw("chip_id", 64))
    put(0x1E0, tcb("committed_tcb"))
    put(0x1E8, version("current"))
    put(0x1EC, version("committed"))
    put(0x1F0, tcb("launch_tcb"))
    if report_version >= 5:
        put(0x1F8, integer("launch_mit_vector", 8, optional=True).to_bytes(8, "little"))
        put(0x200, integer("current_mit_vector", 8, optional=True).to_bytes(8, "little"))
    signature = report.get("signature")
    if not isinstance(signature, Mapping):
        raise EvidenceError(f"{where}.signature: expected {{r, s}} (72 bytes each)")
    put(SIGNED_SIZE, _byte_list(signature.get("r"), f"{where}.signature.r", 72))
    put(SIGNED_SIZE + 72, _byte_list(signature.get("s"), f"{where}.signature.s", 72))
    return bytes(blob)


def snp_report_to_coco(blob: bytes) -> dict[str, Any]:
    """The `sev` crate's serde JSON of an SNP report: the inverse of `snp_report_bytes`.

    What CoCo's snp attester puts in `attestation_report`; a Turin report's TCB versions have an
    FMC component, the others `"fmc": null`. Used to speak the guest's shape and to check the
    round trip.
    """
    if len(blob) != REPORT_SIZE:
        raise EvidenceError(f"SNP report: expected {REPORT_SIZE} bytes, got {len(blob)}")
    version = int.from_bytes(blob[0:4], "little")
    chip = blob[0x1A0:0x1E0]
    # As the sev crate decides: CPUID family 1Ah (v3+), else a Turin-like chip id (v2).
    turin = blob[0x188] == 0x1A if version >= 3 else (any(chip) and not any(chip[8:]))

    def u(offset: int, size: int) -> int:
        return int.from_bytes(blob[offset : offset + size], "little")

    def raw(offset: int, size: int) -> list[int]:
        return list(blob[offset : offset + size])

    def tcb(offset: int) -> dict[str, Any]:
        b = blob[offset : offset + 8]
        if turin:
            return {"fmc": b[0], "bootloader": b[1], "tee": b[2], "snp": b[3], "microcode": b[7]}
        return {"fmc": None, "bootloader": b[0], "tee": b[1], "snp": b[6], "microcode": b[7]}

    def semver(offset: int) -> dict[str, int]:
        return {"major": blob[offset + 2], "minor": blob[offset + 1], "build": blob[offset]}

    v3 = version >= 3
    v5 = version >= 5
    return {
        "version": version,
        "guest_svn": u(0x04, 4),
        "policy": u(0x08, 8),
        "family_id": raw(0x10, 16),
        "image_id": raw(0x20, 16),
        "vmpl": u(0x30, 4),
        "sig_algo": u(0x34, 4),
        "current_tcb": tcb(0x38),
        "plat_info": u(0x40, 8),
        "key_info": u(0x48, 4),
        "report_data": raw(0x50, 64),
        "measurement": raw(0x90, 48),
        "host_data": raw(0xC0, 32),
        "id_key_digest": raw(0xE0, 48),
        "author_key_digest": raw(0x110, 48),
        "report_id": raw(0x140, 32),
        "report_id_ma": raw(0x160, 32),
        "reported_tcb": tcb(0x180),
        "cpuid_fam_id": blob[0x188] if v3 else None,
        "cpuid_mod_id": blob[0x189] if v3 else None,
        "cpuid_step": blob[0x18A] if v3 else None,
        "chip_id": raw(0x1A0, 64),
        "committed_tcb": tcb(0x1E0),
        "current": semver(0x1E8),
        "committed": semver(0x1EC),
        "launch_tcb": tcb(0x1F0),
        "launch_mit_vector": u(0x1F8, 8) if v5 else None,
        "current_mit_vector": u(0x200, 8) if v5 else None,
        "signature": {"r": raw(SIGNED_SIZE, 72), "s": raw(SIGNED_SIZE + 72, 72)},
    }


def snp_cert_entry(cert_type: str, der: bytes) -> dict[str, Any]:
    """One `sev` `CertTableEntry` as serde writes it: `{"cert_type": "VCEK", "data": [...]}`."""
    return {"cert_type": cert_type, "data": list(der)}


def verify_attestation(
    evidence: Evidence,
    expected_report_data: bytes,
    *,
    collateral_cache: CollateralCache | None,
    at: datetime | None = None,
) -> tuple[Evidence, EvidenceReport]:
    """The attest-time check: authenticity, freshness and binding (policy checks come later).

    Returns the evidence completed with cached collateral (what later per-resource policy checks
    re-verify) and the report; debug and measurements are left to the resource policies.
    """
    if collateral_cache is not None:
        evidence = collateral_cache.complete(evidence)
    report = verify_evidence(
        evidence,
        policy=Policy(allow_debug=True, source="<kbs attest>"),
        at=at,
        expected_report_data=expected_report_data,
        allow_simulated=True,
    )
    return evidence, report


def _b64(text: str, where: str) -> bytes:
    clean = text.strip().rstrip("=")
    try:  # standard or URL-safe alphabet, padding optional
        return base64.b64decode(clean + "=" * (-len(clean) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError(f"{where}: not base64 ({exc})") from exc


def _byte_list(value: Any, where: str, size: int | None) -> bytes:
    if not isinstance(value, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
    ):
        raise EvidenceError(f"{where}: expected a list of byte values (0-255)")
    if size is not None and len(value) != size:
        raise EvidenceError(f"{where}: expected {size} bytes, got {len(value)}")
    return bytes(value)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")
