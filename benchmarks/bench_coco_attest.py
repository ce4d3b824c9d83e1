"""CoCo guests' attest check in-process: a bare quote completed from the collateral cache.

Measures, on the real SGX and TDX vectors at a time inside their collateral window, the broker's
attest-time check (`sms.coco_evidence.verify_attestation`: parse, collateral, dcap-qvl, binding)
for a CoCo guest's bare quote whose collateral comes from the offline cache, against the
baseline of the same quote with its collateral archived in the evidence (what a PoX guest
sends), interleaved so load changes hit both. The SNP line rebuilds CoCo's JSON report and
verifies it, against verifying the native bytes. Prints p50 of each and the ratio.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import CollateralCache
from pox_executor.enclave.verifiers.inputs import certificates_pem
from pox_executor.sms.coco_evidence import (
    evidence_from_kbs,
    snp_cert_entry,
    snp_report_to_coco,
    verify_attestation,
)

ROUNDS = int(os.environ.get("POX_BENCH_COCO_ROUNDS", "200"))
VECTORS = Path(__file__).resolve().parents[1] / "tests" / "enclave" / "vectors"
AT = datetime(2025, 7, 1, tzinfo=UTC)  # inside both DCAP vectors' collateral windows


def _p50_pair(
    baseline: Callable[[], object], measured: Callable[[], object]
) -> tuple[float, float]:
    base: list[float] = []
    meas: list[float] = []
    for _ in range(ROUNDS):
        for action, sink in ((baseline, base), (measured, meas)):
            start = time.perf_counter()
            action()
            sink.append(time.perf_counter() - start)
    return statistics.median(base) * 1e3, statistics.median(meas) * 1e3


def main() -> int:
    results: dict[str, object] = {"rounds": ROUNDS}
    with tempfile.TemporaryDirectory() as root:
        cache = CollateralCache(root)
        for kind, tee, evidence_type in (
            ("sgx-dcap", "sgx", "sgx-dcap-quote"),
            ("tdx-dcap", "tdx", "tdx-quote"),
        ):
            quote = (VECTORS / kind / "quote.bin").read_bytes()
            collateral = json.loads((VECTORS / kind / "collateral.json").read_text())
            cache.add(collateral)
            archived = Evidence(evidence_type, quote, {"collateral": collateral})
            native = {"quote": base64.b64encode(quote).decode()}

            def with_archived(evidence: Evidence = archived) -> object:
                return verify_attestation(evidence, bytes(64), collateral_cache=None, at=AT)

            def from_cache(doc: dict[str, str] = native, t: str = tee) -> object:
                return verify_attestation(
                    evidence_from_kbs(t, doc), bytes(64), collateral_cache=cache, at=AT
                )

            base, measured = _p50_pair(with_archived, from_cache)
            print(
                f"{tee}: archived collateral p50 {base:.2f} ms, CoCo quote + cache p50 "
                f"{measured:.2f} ms = {measured / base:.2f}x"
            )
            results[tee] = {"archived_p50_ms": base, "cache_p50_ms": measured}
    report = bytes.fromhex((VECTORS / "sev-snp" / "report.hex").read_text().strip())
    vcek = (VECTORS / "sev-snp" / "vcek.der").read_bytes()
    snp_native = Evidence(
        "snp-report",
        report,
        {
            "vcek": certificates_pem(vcek, where="vcek"),
            "cert_chain": (VECTORS / "sev-snp" / "cert_chain.pem").read_text(),
        },
    )
    coco = {
        "attestation_report": snp_report_to_coco(report),
        "cert_chain": [snp_cert_entry("VCEK", vcek)],
    }
    base, measured = _p50_pair(
        lambda: verify_attestation(snp_native, bytes(64), collateral_cache=None),
        lambda: verify_attestation(
            evidence_from_kbs("snp", coco), bytes(64), collateral_cache=None
        ),
    )
    print(
        f"snp: native bytes p50 {base:.2f} ms, CoCo JSON (VCEK only) p50 {measured:.2f} ms = "
        f"{measured / base:.2f}x"
    )
    results["snp"] = {"native_p50_ms": base, "coco_json_p50_ms": measured}
    write_results("bench_coco_attest", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
