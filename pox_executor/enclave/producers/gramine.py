"""SGX evidence from inside a Gramine enclave, through the `/dev/attestation/` pseudo-files.

This module owns the Gramine protocol: read `attestation_type` (must be `dcap`), write the 64
bytes of report data to `user_report_data`, read the DCAP quote from `quote`, and check that the
quote really is an SGX quote carrying the report data we asked for. `gramine-direct` (no SGX)
has no `/dev/attestation`, so the producer refuses to run there rather than pretend.
"""

from __future__ import annotations

from pathlib import Path

from pox_executor.enclave.evidence import REPORT_DATA_SIZE, Evidence
from pox_executor.enclave.producers.base import (
    CollateralSource,
    FileOps,
    check_dcap_quote,
    read_text,
)
from pox_executor.errors import EnclaveError

DEFAULT_ROOT = Path("/dev/attestation")


class GramineProducer:
    """`sgx-dcap-quote` evidence from Gramine's attestation pseudo-filesystem at `root`."""

    evidence_type = "sgx-dcap-quote"

    def __init__(
        self,
        root: str | Path = DEFAULT_ROOT,
        *,
        collateral_source: CollateralSource | None = None,
        fs: FileOps | None = None,
    ) -> None:
        self.root = Path(root)
        self.collateral_source = collateral_source
        self.fs = fs or FileOps()

    def available(self) -> bool:
        """True when `root` offers DCAP attestation (an SGX enclave under gramine-sgx)."""
        path = self.root / "attestation_type"
        if not self.fs.exists(path):
            return False
        try:
            return read_text(self.fs, path, "Gramine attestation type") == "dcap"
        except EnclaveError:
            return False

    def produce(self, report_data: bytes) -> Evidence:
        if len(report_data) != REPORT_DATA_SIZE:
            raise EnclaveError(
                f"report data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}"
            )
        type_path = self.root / "attestation_type"
        if not self.fs.exists(type_path):
            raise EnclaveError(
                f"no Gramine attestation interface at {self.root}: not running inside "
                "gramine-sgx (gramine-direct has no attestation)"
            )
        kind = read_text(self.fs, type_path, "Gramine attestation type")
        if kind != "dcap":
            raise EnclaveError(
                f"Gramine attestation type is {kind!r}; PoX needs 'dcap' "
                '(set sgx.remote_attestation = "dcap" in the manifest)'
            )
        try:
            self.fs.write_bytes(self.root / "user_report_data", report_data)
        except OSError as exc:
            raise EnclaveError(
                f"cannot write {self.root / 'user_report_data'}: {exc.strerror or exc}"
            ) from exc
        try:
            quote = self.fs.read_bytes(self.root / "quote")
        except OSError as exc:
            raise EnclaveError(f"cannot read {self.root / 'quote'}: {exc.strerror or exc}") from exc
        check_dcap_quote(quote, report_data, want_tdx=False, source=str(self.root / "quote"))
        aux = {}
        if self.collateral_source is not None:
            aux["collateral"] = dict(self.collateral_source(quote))
        return Evidence(type=self.evidence_type, value=quote, aux=aux)
