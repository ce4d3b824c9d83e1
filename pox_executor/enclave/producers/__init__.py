"""Evidence producers: ask the TEE this process runs in for evidence, or say honestly there is none.

This package owns the producers behind `enclave.evidence.EvidenceProducer` (`sgx` via Gramine,
`tdx`/`snp` via configfs-tsm, `sim`) and `detect_producer`, which picks one from what the machine
really offers. Detection never pretends: asking for a TEE that is not there is an error, and
`auto` falls back to `sim` (whose evidence says it is simulated) only when nothing real exists.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Literal

from pox_executor.enclave.evidence import EvidenceProducer
from pox_executor.enclave.producers import configfs_tsm, gramine
from pox_executor.enclave.producers.base import CollateralSource, FileOps, collateral_from_file
from pox_executor.enclave.producers.configfs_tsm import (
    ConfigfsTsmProducer,
    build_snp_cert_table,
    parse_snp_cert_table,
)
from pox_executor.enclave.producers.gramine import GramineProducer
from pox_executor.enclave.producers.sim import SimProducer
from pox_executor.errors import EnclaveError, UsageError

PRODUCER_KINDS = ("auto", "sim", "sgx", "tdx", "snp")

__all__ = [
    "PRODUCER_KINDS",
    "CollateralSource",
    "ConfigfsTsmProducer",
    "FileOps",
    "GramineProducer",
    "SimProducer",
    "build_snp_cert_table",
    "collateral_from_file",
    "detect_producer",
    "detect_tees",
    "parse_snp_cert_table",
]


def detect_tees(
    *,
    gramine_root: str | Path = gramine.DEFAULT_ROOT,
    tsm_root: str | Path = configfs_tsm.DEFAULT_ROOT,
    fs: FileOps | None = None,
) -> list[str]:
    """The real TEEs this process can get evidence from: a subset of `sgx`, `tdx`, `snp`.

    SGX: Gramine's `attestation_type` says `dcap`. TDX/SNP: a probe entry made under the
    configfs-tsm root names its `provider`; the probe entry is removed again.
    """
    ops = fs or FileOps()
    found: list[str] = []
    if GramineProducer(gramine_root, fs=ops).available():
        found.append("sgx")
    root = Path(tsm_root)
    if ops.exists(root):
        probe = root / f"pox-probe-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            ops.mkdir(probe)
        except OSError:
            return found
        try:
            provider = ops.read_bytes(probe / "provider").decode(errors="replace").strip()
        except OSError:
            provider = ""
        finally:
            with contextlib.suppress(OSError):
                ops.rmdir(probe)
        for kind, name in configfs_tsm.PROVIDERS.items():
            if provider == name:
                found.append(kind)
    return found


def detect_producer(
    kind: str = "auto",
    *,
    measurement: str = "unmeasured",
    gramine_root: str | Path = gramine.DEFAULT_ROOT,
    tsm_root: str | Path = configfs_tsm.DEFAULT_ROOT,
    collateral_source: CollateralSource | None = None,
    snp_vcek_pem: str | None = None,
    snp_cert_chain_pem: str | None = None,
    fs: FileOps | None = None,
) -> EvidenceProducer:
    """A producer for `kind` (`auto`, `sim`, `sgx`, `tdx`, `snp`) on this machine.

    An explicit real kind that the machine does not offer raises EnclaveError saying what was
    looked for. `auto` picks the first real TEE found (sgx, tdx, snp) and otherwise `sim`, whose
    reports are marked simulated; `measurement` names the image for `sim` reports.
    """
    if kind not in PRODUCER_KINDS:
        raise UsageError(f"unknown evidence producer {kind!r}; expected one of {PRODUCER_KINDS}")
    if kind == "sim":
        return SimProducer(measurement)
    ops = fs or FileOps()
    found = detect_tees(gramine_root=gramine_root, tsm_root=tsm_root, fs=ops)
    if kind == "auto":
        if not found:
            return SimProducer(measurement)
        kind = found[0]
    if kind not in found:
        where = (
            f"Gramine DCAP attestation at {gramine_root}"
            if kind == "sgx"
            else f"configfs-tsm provider {configfs_tsm.PROVIDERS[kind]!r} under {tsm_root}"
        )
        raise EnclaveError(
            f"no {kind.upper()} TEE here: looked for {where}",
            hint="choose the 'sim' producer (honestly simulated) or run inside the TEE",
        )
    if kind == "sgx":
        return GramineProducer(gramine_root, collateral_source=collateral_source, fs=ops)
    tsm_kind: Literal["tdx", "snp"] = "tdx" if kind == "tdx" else "snp"
    return ConfigfsTsmProducer(
        tsm_kind,
        tsm_root,
        collateral_source=collateral_source,
        snp_vcek_pem=snp_vcek_pem,
        snp_cert_chain_pem=snp_cert_chain_pem,
        fs=ops,
    )
