"""TDX and SEV-SNP evidence through Linux configfs-tsm (`/sys/kernel/config/tsm/report`, 6.7+).

This module owns the configfs-tsm protocol: `mkdir` a fresh report entry, check `provider`
(`tdx_guest` or `sev_guest`), write the report data to `inblob`, read `generation`, read
`outblob` (a TDX quote or an SNP report), read `generation` again and require that nobody else
wrote the entry in between, read `auxblob` (SNP: the certificate table the host supplied, when
present), and `rmdir` the entry. It also owns the parsing of the SNP certificate table (GHCB
specification: 16-byte GUID, 32-bit offset, 32-bit length, terminated by an all-zero entry).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pox_executor.enclave.evidence import REPORT_DATA_SIZE, Evidence
from pox_executor.enclave.producers.base import (
    CollateralSource,
    FileOps,
    check_dcap_quote,
    read_text,
)
from pox_executor.errors import EnclaveError, EvidenceError

DEFAULT_ROOT = Path("/sys/kernel/config/tsm/report")
PROVIDERS = {"tdx": "tdx_guest", "snp": "sev_guest"}
EVIDENCE_TYPES = {"tdx": "tdx-quote", "snp": "snp-report"}

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
_CERT_ROLES = {VCEK_GUID: "vcek", ASK_GUID: "ask", ARK_GUID: "ark"}


class ConfigfsTsmProducer:
    """`tdx-quote` or `snp-report` evidence from the configfs-tsm report interface at `root`.

    TDX quotes get `aux["collateral"]` from `collateral_source` when one is given. SNP reports
    get `aux["vcek"]` and `aux["cert_chain"]` (PEM) from the host's certificate table in
    `auxblob`, or else from `snp_vcek_pem` / `snp_cert_chain_pem` (e.g. fetched from AMD KDS).
    """

    def __init__(
        self,
        kind: Literal["tdx", "snp"],
        root: str | Path = DEFAULT_ROOT,
        *,
        collateral_source: CollateralSource | None = None,
        snp_vcek_pem: str | None = None,
        snp_cert_chain_pem: str | None = None,
        privlevel: int | None = None,
        fs: FileOps | None = None,
    ) -> None:
        if kind not in PROVIDERS:
            raise EnclaveError(f"configfs-tsm kind must be 'tdx' or 'snp', got {kind!r}")
        self.kind = kind
        self.evidence_type = EVIDENCE_TYPES[kind]
        self.root = Path(root)
        self.collateral_source = collateral_source
        self.snp_vcek_pem = snp_vcek_pem
        self.snp_cert_chain_pem = snp_cert_chain_pem
        self.privlevel = privlevel
        self.fs = fs or FileOps()

    def produce(self, report_data: bytes) -> Evidence:
        if len(report_data) != REPORT_DATA_SIZE:
            raise EnclaveError(
                f"report data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}"
            )
        if not self.fs.exists(self.root):
            raise EnclaveError(
                f"no configfs-tsm report interface at {self.root} (Linux 6.7+ inside a TDX or "
                "SEV-SNP guest, with configfs mounted)"
            )
        entry = self.root / f"pox-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.fs.mkdir(entry)
        except OSError as exc:
            raise EnclaveError(
                f"cannot create report entry {entry}: {exc.strerror or exc}"
            ) from exc
        try:
            outblob, auxblob = self._generate(entry, report_data)
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.rmdir(entry)
            raise
        try:
            self.fs.rmdir(entry)
        except OSError as exc:
            raise EnclaveError(
                f"cannot remove report entry {entry}: {exc.strerror or exc}"
            ) from exc
        source = str(entry / "outblob")
        aux: dict[str, Any] = {}
        if self.kind == "tdx":
            check_dcap_quote(outblob, report_data, want_tdx=True, source=source)
            if self.collateral_source is not None:
                aux["collateral"] = dict(self.collateral_source(outblob))
        else:
            _check_snp_report(outblob, report_data, source)
            certificates = parse_snp_cert_table(auxblob) if auxblob else {}
            vcek = certificates.get("vcek") or self.snp_vcek_pem
            chain = None
            if "ask" in certificates and "ark" in certificates:
                chain = certificates["ask"] + certificates["ark"]
            chain = chain or self.snp_cert_chain_pem
            if vcek is not None:
                aux["vcek"] = vcek
            if chain is not None:
                aux["cert_chain"] = chain
        return Evidence(type=self.evidence_type, value=outblob, aux=aux)

    def _generate(self, entry: Path, report_data: bytes) -> tuple[bytes, bytes | None]:
        provider = read_text(self.fs, entry / "provider", "configfs-tsm provider")
        expected = PROVIDERS[self.kind]
        if provider != expected:
            raise EnclaveError(
                f"configfs-tsm provider is {provider!r}, expected {expected!r} for {self.kind}: "
                "this machine is not the TEE you asked for"
            )
        writes = 0
        if self.privlevel is not None:
            self._write(entry / "privlevel", str(self.privlevel).encode())
            writes += 1
        self._write(entry / "inblob", report_data)
        writes += 1
        before = self._generation(entry)
        try:
            outblob = self.fs.read_bytes(entry / "outblob")
        except OSError as exc:
            raise EnclaveError(
                f"cannot read {entry / 'outblob'}: {exc.strerror or exc} (the TEE refused to "
                "produce a report)"
            ) from exc
        auxblob = None
        if self.kind == "snp" and self.fs.exists(entry / "auxblob"):
            try:
                auxblob = self.fs.read_bytes(entry / "auxblob") or None
            except OSError:
                auxblob = None
        after = self._generation(entry)
        if before != after or after != writes:
            raise EnclaveError(
                f"configfs-tsm entry {entry} changed while reading (generation {writes} written, "
                f"{before} before and {after} after reading outblob): another writer raced"
            )
        return outblob, auxblob

    def _write(self, path: Path, data: bytes) -> None:
        try:
            self.fs.write_bytes(path, data)
        except OSError as exc:
            raise EnclaveError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def _generation(self, entry: Path) -> int:
        text = read_text(self.fs, entry / "generation", "configfs-tsm generation")
        try:
            return int(text)
        except ValueError as exc:
            raise EnclaveError(f"{entry / 'generation'}: not a number ({text!r})") from exc


def _check_snp_report(blob: bytes, report_data: bytes, source: str) -> None:
    from pox_executor.enclave.verifiers.snp import parse_snp_report

    try:
        report = parse_snp_report(blob)
    except EvidenceError as exc:
        raise EnclaveError(f"{source}: {exc}") from exc
    if report.report_data != report_data:
        raise EnclaveError(
            f"{source}: the report carries report data {report.report_data.hex()[:32]}..., not "
            f"the requested {report_data.hex()[:32]}..."
        )


def parse_snp_cert_table(blob: bytes) -> dict[str, str]:
    """Certificates of an SNP extended-report table, as PEM text keyed `vcek`, `ask`, `ark`."""
    result: dict[str, str] = {}
    offset = 0
    while offset + 24 <= len(blob):
        guid_bytes = blob[offset : offset + 16]
        start = int.from_bytes(blob[offset + 16 : offset + 20], "little")
        length = int.from_bytes(blob[offset + 20 : offset + 24], "little")
        offset += 24
        if not any(guid_bytes) and start == 0 and length == 0:
            return result
        role = _CERT_ROLES.get(uuid.UUID(bytes=guid_bytes)) or _CERT_ROLES.get(
            uuid.UUID(bytes_le=guid_bytes)
        )
        if role is None:
            continue
        if start + length > len(blob):
            raise EnclaveError(f"SNP certificate table: {role} entry points past the table end")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # AMD VCEK serials trip an RFC 5280 warning
                cert = x509.load_der_x509_certificate(blob[start : start + length])
        except ValueError as exc:
            raise EnclaveError(f"SNP certificate table: {role} is not a DER certificate") from exc
        result[role] = cert.public_bytes(Encoding.PEM).decode("ascii")
    raise EnclaveError("SNP certificate table: no terminating all-zero entry")


def build_snp_cert_table(certificates: Mapping[str, bytes]) -> bytes:
    """The inverse of `parse_snp_cert_table` for DER certificates keyed `vcek`, `ask`, `ark`."""
    guids = {role: guid for guid, role in _CERT_ROLES.items()}
    roles = [role for role in ("vcek", "ask", "ark") if role in certificates]
    header_size = 24 * (len(roles) + 1)
    header = b""
    body = b""
    for role in roles:
        der = certificates[role]
        header += guids[role].bytes
        header += (header_size + len(body)).to_bytes(4, "little") + len(der).to_bytes(4, "little")
        body += der
    return header + bytes(24) + body
