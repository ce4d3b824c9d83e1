"""Shared plumbing of the evidence producers: file operations and archived verification material.

Real producers talk to the kernel or to Gramine through special files. This module owns the thin
`FileOps` seam they use (so tests can add the kernel's side effects to a temporary directory) and
the `CollateralSource` hook that archives DCAP collateral next to a fresh quote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pox_executor.errors import EnclaveError, EvidenceError

# Given a fresh quote, return the DCAP collateral object to archive as aux["collateral"]
# (the JSON object of dcap-qvl's QuoteCollateralV3), e.g. fetched from a PCCS at attestation time.
CollateralSource = Callable[[bytes], Mapping[str, Any]]


class FileOps:
    """The file operations producers perform, one method each, on real paths."""

    def exists(self, path: Path) -> bool:
        return path.exists()

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def write_bytes(self, path: Path, data: bytes) -> None:
        # One write(2) call: configfs and Gramine's pseudo-files take the value in one write.
        fd = os.open(path, os.O_WRONLY)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")


def collateral_from_file(path: str | Path) -> CollateralSource:
    """A CollateralSource that archives the collateral JSON stored in `path` (for every quote)."""
    location = Path(path)

    def source(quote: bytes) -> Mapping[str, Any]:
        del quote
        try:
            data = json.loads(location.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EnclaveError(f"{location}: cannot read DCAP collateral ({exc})") from exc
        if not isinstance(data, dict):
            raise EnclaveError(f"{location}: DCAP collateral must be a JSON object")
        return data

    return source


def read_text(fs: FileOps, path: Path, what: str) -> str:
    try:
        return fs.read_bytes(path).decode("utf-8", errors="replace").strip()
    except OSError as exc:
        raise EnclaveError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def check_dcap_quote(quote: bytes, report_data: bytes, *, want_tdx: bool, source: str) -> None:
    """The quote parses, is of the expected TEE and carries exactly `report_data`."""
    from pox_executor.enclave.verifiers.dcap import import_dcap_qvl

    try:
        dcap_qvl = import_dcap_qvl()
    except EvidenceError as exc:
        raise EnclaveError(str(exc), hint=exc.hint) from exc
    try:
        parsed = dcap_qvl.parse_quote(quote)
    except ValueError as exc:
        raise EnclaveError(f"{source}: not a DCAP quote ({exc})") from exc
    if bool(parsed.is_tdx()) != want_tdx:
        raise EnclaveError(
            f"{source}: got a {parsed.quote_type()} quote, expected {'TDX' if want_tdx else 'SGX'}"
        )
    carried = bytes(parsed.report.report_data)
    if carried != report_data:
        raise EnclaveError(
            f"{source}: the quote carries report data {carried.hex()[:32]}..., not the requested "
            f"{report_data.hex()[:32]}... (stale quote or a concurrent writer)"
        )
