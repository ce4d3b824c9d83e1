"""Intel DCAP evidence (`sgx-dcap-quote`, `tdx-quote`): parse, verify and appraise freshness.

This module owns the DCAP part of the pipeline: the archived collateral encoding
(`aux["collateral"]`, the JSON object of dcap-qvl's `QuoteCollateralV3`: PEM strings for issuer
chains, JSON strings for TCB info and QE identity, hex strings for CRLs and signatures), the
collateral validity window, the debug bits (SGX ATTRIBUTES.DEBUG, TDX TD_ATTRIBUTES.DEBUG) and the
call into `dcap-qvl` that checks the quote, the PCK chain and the collateral against the pinned
Intel SGX Root CA. TCB status and advisories are reported as Intel issued them; accepting them is
the policy's job.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from cryptography import x509

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers.claims import TeeClaims, iso, one_line, parse_time
from pox_executor.enclave.verifiers.report import CHECK_FRESHNESS, CHECK_SIGNATURE, Failure
from pox_executor.errors import EvidenceError

SGX_ATTRIBUTE_DEBUG = 0x02  # bit 1 of ATTRIBUTES.FLAGS (byte 0)
TDX_TD_ATTRIBUTE_DEBUG = 0x01  # bit 0 of TD_ATTRIBUTES (TUD.DEBUG, byte 0)
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081

COLLATERAL_FIELDS = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)

_TIME_WORDS = ("expired", "in the future", "crlexpired", "not yet valid")


def import_dcap_qvl() -> Any:
    """The dcap-qvl module (the `attest` extra), or EvidenceError saying how to install it."""
    try:
        import dcap_qvl
    except ImportError as exc:
        raise EvidenceError(
            "verifying Intel DCAP evidence needs the dcap-qvl package",
            hint="pip install 'snakemake-executor-plugin-pox[attest]' (dcap-qvl 0.7)",
        ) from exc
    return dcap_qvl


def intel_root_ca_der() -> bytes:
    """The pinned Intel SGX Root CA certificate (DER) that all DCAP evidence must chain to."""
    return (
        resources.files("pox_executor.enclave.verifiers")
        .joinpath("roots/intel-sgx-root-ca.der")
        .read_bytes()
    )


@dataclass(frozen=True)
class CollateralWindow:
    """When a collateral set is usable: [not_before, not_after), each bound naming its source."""

    not_before: datetime
    not_before_source: str
    not_after: datetime
    not_after_source: str

    def contains(self, at: datetime) -> bool:
        return self.not_before <= at < self.not_after


def load_collateral(raw: Any, *, where: str = "aux.collateral") -> dict[str, str]:
    """Validate archived DCAP collateral: an object (or its JSON text) with the nine fields."""
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise EvidenceError(f"{where}: DCAP collateral is not valid JSON ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise EvidenceError(
            f"{where}: expected the DCAP collateral object ({', '.join(COLLATERAL_FIELDS)})"
        )
    missing = [name for name in COLLATERAL_FIELDS if not isinstance(raw.get(name), str)]
    if missing:
        raise EvidenceError(
            f"{where}: DCAP collateral field {missing[0]!r} is missing or not a string"
        )
    return {name: str(raw[name]) for name in raw if isinstance(raw[name], str)}


def collateral_window(
    collateral: Mapping[str, str], quote_chain_pem: bytes | None
) -> CollateralWindow:
    """The time span in which every collateral document and certificate is valid."""
    starts: list[tuple[datetime, str]] = []
    ends: list[tuple[datetime, str]] = []
    for name, label in (("tcb_info", "TCB info"), ("qe_identity", "QE identity")):
        document = _json_document(collateral[name], name)
        try:
            starts.append((parse_time(str(document["issueDate"])), f"{label} issueDate"))
            ends.append((parse_time(str(document["nextUpdate"])), f"{label} nextUpdate"))
        except (KeyError, ValueError) as exc:
            raise EvidenceError(
                f"aux.collateral.{name}: missing or malformed issueDate/nextUpdate ({exc})"
            ) from exc
    for name, label in (("root_ca_crl", "Root CA CRL"), ("pck_crl", "PCK CRL")):
        crl = _crl(collateral[name], name)
        starts.append((crl.last_update_utc, f"{label} thisUpdate"))
        if crl.next_update_utc is not None:
            ends.append((crl.next_update_utc, f"{label} nextUpdate"))
    chains = [
        (collateral[name].encode(), name)
        for name in ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")
    ]
    if quote_chain_pem:
        chains.append((quote_chain_pem, "the quote's PCK certificate chain"))
    for pem, label in chains:
        for cert in _certificates(pem, label):
            cn = _common_name(cert)
            starts.append((cert.not_valid_before_utc, f"certificate {cn!r} notBefore"))
            ends.append((cert.not_valid_after_utc, f"certificate {cn!r} notAfter"))
    start = max(starts, key=lambda item: item[0])
    end = min(ends, key=lambda item: item[0])
    return CollateralWindow(start[0], start[1], end[0], end[1])


def verify_dcap(evidence: Evidence, at: datetime) -> TeeClaims:
    """Parse a DCAP quote, check it with dcap-qvl at time `at`, and return its claims."""
    dcap_qvl = import_dcap_qvl()
    kind = evidence.type
    try:
        quote = dcap_qvl.parse_quote(evidence.value)
    except ValueError as exc:
        raise EvidenceError(f"{kind}: cannot parse the quote ({one_line(str(exc))})") from exc
    tee_type = int(quote.header.tee_type)
    if kind == "sgx-dcap-quote" and tee_type != TEE_TYPE_SGX:
        raise EvidenceError(f"{kind}: the quote is a TDX quote (tee_type {tee_type:#x}), not SGX")
    if kind == "tdx-quote" and tee_type != TEE_TYPE_TDX:
        raise EvidenceError(f"{kind}: the quote is an SGX quote (tee_type {tee_type:#x}), not TDX")

    if "collateral" not in evidence.aux:
        raise EvidenceError(
            f"{kind}: no DCAP collateral archived with the evidence (aux.collateral)",
            hint="pass the collateral JSON with --collateral FILE; a key broker reads it from "
            "its collateral cache (pox sms collateral add FILE)",
        )
    collateral = load_collateral(evidence.aux["collateral"])
    chain_pem = quote.cert_chain_pem_bytes()
    window = collateral_window(collateral, chain_pem)

    claims = _claims_from_quote(kind, quote)
    claims.window = (window.not_before, window.not_after)
    claims.details["collateral_window"] = {
        "not_before": iso(window.not_before),
        "not_before_source": window.not_before_source,
        "not_after": iso(window.not_after),
        "not_after_source": window.not_after_source,
    }

    fresh = window.contains(at)
    if at < window.not_before:
        claims.failures.append(
            Failure(
                CHECK_FRESHNESS,
                f"verification time {iso(at)} is before the collateral is valid "
                f"({window.not_before_source} {iso(window.not_before)})",
            )
        )
    elif at >= window.not_after:
        claims.failures.append(
            Failure(
                CHECK_FRESHNESS,
                f"collateral expired: {window.not_after_source} {iso(window.not_after)} is not "
                f"after the verification time {iso(at)}"
                + (
                    " (from the collateral cache: add newer collateral with "
                    "`pox sms collateral add FILE`)"
                    if evidence.aux.get("collateral_source") == "cache"
                    else ""
                ),
            )
        )
    # Authenticity is checked at `at` when the collateral is fresh; when it is not, at the start
    # of its window, so that a stale but genuine quote is reported as stale, not as forged.
    check_time = at if fresh else window.not_before
    try:
        qvl_collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
    except ValueError as exc:
        raise EvidenceError(f"aux.collateral: dcap-qvl rejects it ({one_line(str(exc))})") from exc
    now_secs = int(check_time.timestamp())
    try:
        verifier = dcap_qvl.QuoteVerifier(intel_root_ca_der())
        result = verifier.verify_with_policy(
            evidence.value, qvl_collateral, now_secs, dcap_qvl.QuotePolicy.claims_only(now_secs)
        )
    except ValueError as exc:
        message = one_line(str(exc))
        check = CHECK_FRESHNESS if _is_time_error(message) else CHECK_SIGNATURE
        if check == CHECK_FRESHNESS and not fresh:
            return claims  # already reported precisely above
        claims.failures.append(
            Failure(
                check,
                f"the quote does not verify against the Intel SGX Root CA with this collateral "
                f"at {iso(check_time)}: {message}",
            )
        )
        return claims
    verified = json.loads(result.to_json())
    claims.authentic = True
    tcb = verified.get("tcb", {})
    claims.tcb_status = str(tcb.get("status"))
    claims.advisories = tuple(str(a) for a in tcb.get("advisory_ids", []))
    platform = verified.get("platform", {})
    pck = platform.get("pck", {})
    claims.details.update(
        {
            "tcb_date": platform.get("tcb_level", {}).get("tcbDate"),
            "tcb_eval_data_number": tcb.get("eval_data_number"),
            "qe_tcb_status": verified.get("qe", {}).get("tcb_level", {}).get("tcbStatus"),
            "fmspc": bytes(pck.get("fmspc", [])).hex(),
            "dynamic_platform": pck.get("dynamic_platform"),
            "cached_keys": pck.get("cached_keys"),
            "smt_enabled": pck.get("smt_enabled"),
        }
    )
    return claims


def _claims_from_quote(kind: str, quote: Any) -> TeeClaims:
    report = quote.report
    details: dict[str, Any] = {"quote_version": int(quote.header.version)}
    if kind == "sgx-dcap-quote":
        attributes = bytes(report.attributes)
        measurements = {
            "mrenclave": bytes(report.mr_enclave).hex(),
            "mrsigner": bytes(report.mr_signer).hex(),
        }
        debug = bool(attributes[0] & SGX_ATTRIBUTE_DEBUG)
        details["attributes"] = attributes.hex()
    else:
        td_attributes = bytes(report.td_attributes)
        measurements = {"mrtd": bytes(report.mr_td).hex()}
        for index in range(4):
            measurements[f"rtmr{index}"] = bytes(getattr(report, f"rt_mr{index}")).hex()
        debug = bool(td_attributes[0] & TDX_TD_ATTRIBUTE_DEBUG)
        details["td_attributes"] = td_attributes.hex()
        details["mr_seam"] = bytes(report.mr_seam).hex()
    return TeeClaims(
        type=kind,
        measurements=measurements,
        report_data=bytes(report.report_data),
        debug=debug,
        authentic=False,
        details=details,
    )


def _is_time_error(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _TIME_WORDS)


def _json_document(text: str, name: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise EvidenceError(f"aux.collateral.{name}: not a JSON document ({exc})") from exc
    if isinstance(document, dict):
        # Intel PCS returns {"tcbInfo": {...}, "signature": ...}; dcap-qvl stores the inner body.
        inner = document.get("tcbInfo", document.get("enclaveIdentity", document))
        if isinstance(inner, dict):
            return inner
    raise EvidenceError(f"aux.collateral.{name}: expected a JSON object")


def _crl(text: str, name: str) -> x509.CertificateRevocationList:
    try:
        der = bytes.fromhex(text)
        return x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise EvidenceError(
            f"aux.collateral.{name}: expected a hex-encoded DER CRL ({exc})"
        ) from exc


def _certificates(pem: bytes, label: str) -> list[x509.Certificate]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise EvidenceError(f"{label}: not a PEM certificate chain ({exc})") from exc


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()
