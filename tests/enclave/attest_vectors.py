"""Shared helpers for the attestation tests: the real hardware evidence in `vectors/`.

The vectors live in the repository (`vectors/README.md` says where each came from) and are
required: a missing file fails the tests (they never skip).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pox_executor.enclave.evidence import Evidence

VECTORS = Path(__file__).resolve().parent / "vectors"

# Times inside each collateral window (see vectors/README.md) and after it.
SGX_AT = datetime(2025, 7, 1, tzinfo=UTC)
TDX_AT = datetime(2025, 7, 1, tzinfo=UTC)
SNP_AT = datetime(2025, 7, 1, tzinfo=UTC)
AFTER_DCAP = datetime(2025, 8, 1, tzinfo=UTC)
AFTER_SNP = datetime(2031, 1, 1, tzinfo=UTC)

SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
SGX_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
TDX_MRTD = (
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
    "de03ae6dc5f87f27428b2538873118b7"
)
SNP_MEASUREMENT = (
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d"
    "3e1a0dc39b2c60bd95b9c480cd81841f"
)

# Byte offsets used by the tampering tests.
SGX_ATTRIBUTES_OFFSET = 48 + 48  # quote header, then cpu_svn(16) misc_select(4) reserved(28)
TDX_TD_ATTRIBUTES_OFFSET = (
    48 + 16 + 48 + 48 + 8
)  # header, tee_tcb_svn, mr_seam, mr_signer_seam, seam_attributes
DCAP_REPORT_DATA_OFFSET = {"sgx-dcap-quote": 48 + 320, "tdx-quote": 48 + 520}
SNP_POLICY_OFFSET = 0x08
SNP_REPORT_DATA_OFFSET = 0x50


def vector(relative: str) -> Path:
    path = VECTORS / relative
    assert path.is_file(), f"missing test vector {path}"
    return path


def collateral(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(vector(f"{kind}/collateral.json").read_text())
    return data


def sgx_evidence() -> Evidence:
    return Evidence(
        "sgx-dcap-quote",
        vector("sgx-dcap/quote.bin").read_bytes(),
        {"collateral": collateral("sgx-dcap")},
    )


def tdx_evidence() -> Evidence:
    return Evidence(
        "tdx-quote",
        vector("tdx-dcap/quote.bin").read_bytes(),
        {"collateral": collateral("tdx-dcap")},
    )


def snp_report_bytes() -> bytes:
    return bytes.fromhex(vector("sev-snp/report.hex").read_text().strip())


def snp_evidence() -> Evidence:
    from pox_executor.enclave.verifiers.inputs import certificates_pem

    return Evidence(
        "snp-report",
        snp_report_bytes(),
        {
            "vcek": certificates_pem(vector("sev-snp/vcek.der").read_bytes(), where="vcek"),
            "cert_chain": vector("sev-snp/cert_chain.pem").read_text(),
        },
    )


def with_value(evidence: Evidence, value: bytes) -> Evidence:
    return Evidence(evidence.type, value, dict(evidence.aux))


def flip_bit(blob: bytes, offset: int, mask: int = 0x01) -> bytes:
    copy = bytearray(blob)
    copy[offset] ^= mask
    return bytes(copy)
