"""Reading evidence and verification material from files, for auditors and the CLI.

This module owns the accepted input forms: our evidence envelope (JSON `{type, value, aux}`) or
a vendor's native blob (raw binary or hex text) named with its type, plus separately supplied
material (DCAP collateral JSON, SNP VCEK as DER or PEM, SNP ASK/ARK chain as PEM) that is merged
into the envelope's `aux` in the archived encodings `verify_evidence` reads. Errors that are the
caller's (a missing type, unreadable file) are UsageError; malformed evidence is EvidenceError.
"""

from __future__ import annotations

import json
import re
import string
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pox_executor.enclave.evidence import EVIDENCE_TYPES, REPORT_DATA_SIZE, Evidence
from pox_executor.enclave.verifiers.dcap import load_collateral
from pox_executor.errors import EvidenceError, UsageError

NATIVE_TYPES = ("sgx-dcap-quote", "tdx-quote", "snp-report")
_HEX_DIGITS = set(string.hexdigits.encode()) | set(string.whitespace.encode())


def load_evidence(
    path: str | Path,
    *,
    evidence_type: str | None = None,
    collateral: str | Path | None = None,
    vcek: str | Path | None = None,
    cert_chain: str | Path | None = None,
) -> Evidence:
    """Evidence from an envelope JSON file or a native blob, with material merged into aux."""
    raw = _read(path, "evidence")
    stripped = raw.strip()
    if stripped.startswith(b"{"):
        try:
            document = json.loads(stripped)
        except ValueError as exc:
            raise EvidenceError(f"{path}: looks like JSON but does not parse ({exc})") from exc
        evidence = Evidence.from_json(document, where=str(path))
        if evidence_type is not None and evidence_type != evidence.type:
            raise UsageError(
                f"{path}: the envelope holds {evidence.type} evidence, but --type says "
                f"{evidence_type}"
            )
    else:
        if evidence_type is None:
            raise UsageError(
                f"{path}: not an evidence envelope; name the native blob's format with --type "
                + "|".join(NATIVE_TYPES)
            )
        if evidence_type not in EVIDENCE_TYPES:
            raise UsageError(f"unknown evidence type {evidence_type!r}")
        evidence = Evidence(type=evidence_type, value=decode_blob(raw), aux={})
    aux: dict[str, Any] = dict(evidence.aux)
    if collateral is not None:
        text = _read(collateral, "DCAP collateral").decode("utf-8", errors="replace")
        aux["collateral"] = load_collateral(text, where=str(collateral))
    if vcek is not None:
        aux["vcek"] = certificates_pem(_read(vcek, "VCEK"), where=str(vcek))
    if cert_chain is not None:
        aux["cert_chain"] = certificates_pem(
            _read(cert_chain, "certificate chain"), where=str(cert_chain)
        )
    if evidence.type in ("sgx-dcap-quote", "tdx-quote") and "collateral" not in aux:
        raise UsageError(
            f"{path}: {evidence.type} needs its DCAP collateral: none archived in the "
            "envelope; pass --collateral FILE"
        )
    if evidence.type == "snp-report" and ("vcek" not in aux or "cert_chain" not in aux):
        raise UsageError(
            f"{path}: snp-report needs the VCEK and the ASK/ARK chain: pass --vcek FILE "
            "--cert-chain FILE"
        )
    return Evidence(type=evidence.type, value=evidence.value, aux=aux)


def decode_blob(raw: bytes) -> bytes:
    """A native blob given as raw bytes or as hex text (whitespace ignored)."""
    if raw and all(byte in _HEX_DIGITS for byte in raw):
        compact = re.sub(rb"\s+", b"", raw)
        if compact and len(compact) % 2 == 0:
            return bytes.fromhex(compact.decode("ascii"))
    return raw


def certificates_pem(data: bytes, *, where: str) -> str:
    """PEM text of the certificates in `data` (PEM, or one DER certificate)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AMD VCEK serial numbers trip an RFC 5280 warning
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                certificates = x509.load_pem_x509_certificates(data)
            else:
                certificates = [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise EvidenceError(f"{where}: not a DER or PEM certificate ({exc})") from exc
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates)


def parse_at(text: str) -> datetime:
    """A verification time: RFC 3339 (`2025-07-01T00:00:00Z`; no zone means UTC) or Unix seconds."""
    value = text.strip()
    try:
        if re.fullmatch(r"@?\d+", value):
            return datetime.fromtimestamp(int(value.lstrip("@")), UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as exc:
        raise UsageError(
            f"--at {text!r}: expected an RFC 3339 time such as 2025-07-01T00:00:00Z or Unix seconds"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_report_data(text: str) -> bytes:
    """Expected report data given as 128 hex characters."""
    try:
        value = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise UsageError(f"--report-data: not hex ({exc})") from exc
    if len(value) != REPORT_DATA_SIZE:
        raise UsageError(
            f"--report-data: expected {2 * REPORT_DATA_SIZE} hex characters "
            f"({REPORT_DATA_SIZE} bytes), got {len(value)} bytes"
        )
    return value


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
