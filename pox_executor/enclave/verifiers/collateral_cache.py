"""An offline DCAP collateral cache keyed the way a PCCS keys it, for quotes sent without any.

A Confidential Containers guest sends only its quote; Trustee's verifier fetches the collateral
from a PCCS. There is no network here, so this module owns a directory that holds the same
documents, split and keyed as PCCS v4 serves them:

    sgx/tcb/<FMSPC>.json, tdx/tcb/<FMSPC>.json     (GET /{sgx,tdx}/certification/v4/tcb?fmspc=)
    sgx/qe-identity.json, tdx/qe-identity.json     (GET /{sgx,tdx}/certification/v4/qe/identity)
    pckcrl/processor.json, pckcrl/platform.json    (GET /sgx/certification/v4/pckcrl?ca=)
    rootcacrl.json                                 (GET /sgx/certification/v4/rootcacrl)

`add` splits one archived collateral object (dcap-qvl's QuoteCollateralV3 JSON, what
`pox attest verify --collateral` reads) into those entries; an entry is only ever replaced by one
issued later. `resolve` assembles the collateral for one quote from its FMSPC, PCK CA and TEE
type. Whether the collateral is still fresh is the verifier's job (`dcap.verify_dcap`), so stale
entries are refused there with the document that expired.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers.claims import iso, one_line, parse_time
from pox_executor.enclave.verifiers.dcap import (
    TEE_TYPE_TDX,
    import_dcap_qvl,
    load_collateral,
)
from pox_executor.errors import EvidenceError

ADD_HINT = "add the collateral with `pox sms collateral add FILE` (a QuoteCollateralV3 JSON)"
_TCB_IDS = {"SGX": "sgx", "TDX": "tdx"}
_QE_IDS = {"QE": "sgx", "TD_QE": "tdx"}
_PCK_CAS = {"Intel SGX PCK Processor CA": "processor", "Intel SGX PCK Platform CA": "platform"}


@dataclass(frozen=True)
class CacheEntry:
    """One stored document group: where it lives, its PCCS key, and when it was issued."""

    path: Path
    key: str
    issued: datetime
    next_update: datetime | None


class CollateralCache:
    """The collateral directory at `root` (created on first `add`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # --- writing ---------------------------------------------------------------------------

    def add(self, raw: Any, *, where: str = "collateral") -> list[CacheEntry]:
        """Split a full collateral object into PCCS-keyed entries; returns those written.

        An entry already cached and issued later than the new one is kept (EvidenceError when
        nothing at all would change, so an operator does not believe stale data was loaded).
        """
        collateral = load_collateral(raw, where=where)
        tcb = _document(collateral["tcb_info"], f"{where}.tcb_info", "tcbInfo")
        qe = _document(collateral["qe_identity"], f"{where}.qe_identity", "enclaveIdentity")
        tcb_kind = _TCB_IDS.get(str(tcb.get("id", "SGX")))
        qe_kind = _QE_IDS.get(str(qe.get("id")))
        if tcb_kind is None:
            raise EvidenceError(f"{where}.tcb_info: id {tcb.get('id')!r} is not SGX or TDX")
        if qe_kind is None:
            raise EvidenceError(
                f"{where}.qe_identity: id {qe.get('id')!r} is not QE (SGX) or TD_QE (TDX)"
            )
        fmspc = str(tcb.get("fmspc", "")).upper()
        if len(fmspc) != 12 or not _is_hex(fmspc):
            raise EvidenceError(f"{where}.tcb_info: fmspc {fmspc!r} is not 6 bytes of hex")
        pck_crl = _crl(collateral["pck_crl"], f"{where}.pck_crl")
        ca = _PCK_CAS.get(_issuer_cn(pck_crl))
        if ca is None:
            raise EvidenceError(
                f"{where}.pck_crl: issued by {_issuer_cn(pck_crl)!r}, not an Intel PCK CA "
                f"({', '.join(_PCK_CAS)})"
            )
        root_crl = _crl(collateral["root_ca_crl"], f"{where}.root_ca_crl")
        dcap_qvl = import_dcap_qvl()  # last: its own messages do not name the field
        try:
            dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
        except ValueError as exc:
            raise EvidenceError(f"{where}: dcap-qvl rejects it ({one_line(str(exc))})") from exc
        groups = [
            (
                self.root / tcb_kind / "tcb" / f"{fmspc}.json",
                f"{tcb_kind} TCB info fmspc={fmspc}",
                {k: collateral[k] for k in ("tcb_info", "tcb_info_signature")}
                | {"tcb_info_issuer_chain": collateral["tcb_info_issuer_chain"]},
                _issued(tcb, f"{where}.tcb_info"),
            ),
            (
                self.root / qe_kind / "qe-identity.json",
                f"{qe_kind} QE identity",
                {
                    k: collateral[k]
                    for k in ("qe_identity", "qe_identity_signature", "qe_identity_issuer_chain")
                },
                _issued(qe, f"{where}.qe_identity"),
            ),
            (
                self.root / "pckcrl" / f"{ca}.json",
                f"PCK CRL ca={ca}",
                {k: collateral[k] for k in ("pck_crl", "pck_crl_issuer_chain")},
                (pck_crl.last_update_utc, pck_crl.next_update_utc),
            ),
            (
                self.root / "rootcacrl.json",
                "Root CA CRL",
                {"root_ca_crl": collateral["root_ca_crl"]},
                (root_crl.last_update_utc, root_crl.next_update_utc),
            ),
        ]
        written: list[CacheEntry] = []
        kept: list[str] = []
        for path, key, body, (issued, next_update) in groups:
            current = self._issued_at(path)
            if current is not None and current > issued:
                kept.append(f"{key} (cached one issued {iso(current)})")
                continue
            _write_json(path, {"issued": iso(issued), **body})
            written.append(CacheEntry(path, key, issued, next_update))
        if not written:
            raise EvidenceError(
                f"{where}: every document is older than the cached one; nothing changed: "
                + "; ".join(kept)
            )
        return written

    # --- reading ---------------------------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every cached entry with its PCCS key and validity (for `pox sms collateral list`)."""
        found: list[CacheEntry] = []
        for path in sorted(self.root.rglob("*.json")) if self.root.is_dir() else []:
            relative = path.relative_to(self.root).as_posix()
            data = _read_json(path)
            issued = _stored_issued(data, path)
            next_update: datetime | None = None
            if "tcb_info" in data:
                next_update = _next_update(_document(data["tcb_info"], str(path), "tcbInfo"))
            elif "qe_identity" in data:
                next_update = _next_update(
                    _document(data["qe_identity"], str(path), "enclaveIdentity")
                )
            else:
                crl_hex = data.get("pck_crl", data.get("root_ca_crl"))
                if isinstance(crl_hex, str):
                    next_update = _crl(crl_hex, str(path)).next_update_utc
            found.append(CacheEntry(path, relative, issued, next_update))
        return found

    def resolve(self, quote: bytes, *, where: str = "quote") -> dict[str, str]:
        """The collateral for `quote` (its FMSPC, PCK CA and TEE type), or EvidenceError."""
        dcap_qvl = import_dcap_qvl()
        try:
            parsed = dcap_qvl.parse_quote(quote)
            fmspc = str(parsed.fmspc()).upper()
            ca = str(parsed.ca()).lower()
        except ValueError as exc:
            raise EvidenceError(
                f"{where}: cannot read the FMSPC and PCK CA from the quote's PCK certificate "
                f"({one_line(str(exc))})"
            ) from exc
        kind = "tdx" if int(parsed.header.tee_type) == TEE_TYPE_TDX else "sgx"
        parts = (
            (self.root / kind / "tcb" / f"{fmspc}.json", f"{kind} TCB info for FMSPC {fmspc}"),
            (self.root / kind / "qe-identity.json", f"{kind} QE identity"),
            (self.root / "pckcrl" / f"{ca}.json", f"PCK CRL of the {ca} CA"),
            (self.root / "rootcacrl.json", "Intel SGX Root CA CRL"),
        )
        collateral: dict[str, str] = {}
        for path, label in parts:
            if not path.is_file():
                raise EvidenceError(
                    f"{where}: no {label} in the collateral cache {self.root}", hint=ADD_HINT
                )
            data = _read_json(path)
            collateral.update({k: v for k, v in data.items() if k != "issued"})
        return load_collateral(collateral, where=f"collateral cache {self.root}")

    def complete(self, evidence: Evidence) -> Evidence:
        """`evidence` with `aux.collateral` from the cache when it is a DCAP quote without one."""
        if evidence.type not in ("sgx-dcap-quote", "tdx-quote") or "collateral" in evidence.aux:
            return evidence
        collateral = self.resolve(evidence.value, where=evidence.type)
        return Evidence(
            evidence.type,
            evidence.value,
            {**evidence.aux, "collateral": collateral, "collateral_source": "cache"},
        )

    def _issued_at(self, path: Path) -> datetime | None:
        if not path.is_file():
            return None
        return _stored_issued(_read_json(path), path)


def _document(text: str, where: str, wrapper: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise EvidenceError(f"{where}: not a JSON document ({exc})") from exc
    if isinstance(document, dict) and isinstance(document.get(wrapper), dict):
        document = document[wrapper]
    if not isinstance(document, dict):
        raise EvidenceError(f"{where}: expected a JSON object")
    return document


def _issued(document: dict[str, Any], where: str) -> tuple[datetime, datetime | None]:
    try:
        return parse_time(str(document["issueDate"])), _next_update(document)
    except (KeyError, ValueError) as exc:
        raise EvidenceError(f"{where}: missing or malformed issueDate ({exc})") from exc


def _next_update(document: dict[str, Any]) -> datetime | None:
    try:
        return parse_time(str(document["nextUpdate"]))
    except (KeyError, ValueError):
        return None


def _crl(text: str, where: str) -> x509.CertificateRevocationList:
    try:
        der = bytes.fromhex(text)
    except ValueError:
        der = text.encode()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if der.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_crl(der)
            return x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise EvidenceError(f"{where}: not a CRL ({exc})") from exc


def _issuer_cn(crl: x509.CertificateRevocationList) -> str:
    names = crl.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else crl.issuer.rfc4514_string()


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{path}: unreadable collateral cache entry ({exc})") from exc
    if not isinstance(data, dict):
        raise EvidenceError(f"{path}: collateral cache entry is not a JSON object")
    return data


def _stored_issued(data: dict[str, Any], path: Path) -> datetime:
    try:
        return parse_time(str(data["issued"]))
    except (KeyError, ValueError) as exc:
        raise EvidenceError(f"{path}: collateral cache entry has no valid 'issued' time") from exc


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
