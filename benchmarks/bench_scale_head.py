"""What one head can do per second for a run of many jobs: log appends, checkpoint signatures,
statement verification, Merkle tree growth, and the memory each log entry keeps; extrapolated
to 1,000,000 jobs (docs/scale.md).

The statement is a real one: a job run and recorded in-process by the recorder with the sim
runtime (no isolation), as a node's `pox jobstep` records it. Each figure is printed with its
baseline measured in the same run:
- log append (`RunLog.append`, group-committed: one fsync and one checkpoint signature per 0.5 s)
  against writing the same bytes to a file kept open;
- checkpoint: signing alone, and a written checkpoint (fsync of the log, sign, atomic rename);
- verifying one statement as the head's collector does (decode, DSSE signature by a key the
  evidence binds, evidence check with simulated evidence allowed) against one Ed25519
  verification alone;
- the RFC 9162 compact tree: appending leaf hashes;
- memory: the resident-size growth of a `RunLog` per entry.
Writes benchmarks/results/scale_head.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import best_of, write_results

from pox_executor.audit.evidence_check import check_evidence
from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.enclave.sim import SimRuntime
from pox_executor.enclave.verifiers import Policy, verify_evidence
from pox_executor.enclave.verifiers.inputs import certificates_pem
from pox_executor.enclave.verifiers.policy import parse_policy
from pox_executor.provenance import merkle
from pox_executor.provenance.checkpoint import Checkpoint, sign_checkpoint
from pox_executor.provenance.dsse import verify_envelope
from pox_executor.provenance.keys import PublicKey, SigningKey
from pox_executor.provenance.log import RunLog
from pox_executor.provenance.recorder import JobFacts, OutputFile, RunRecorder
from pox_executor.provenance.records import JobRecord, decode_line

TARGET_JOBS = 1_000_000


def record_one_statement(workdir: Path) -> bytes:
    """Run and record one small job in-process; return its signed envelope line."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text("rule map:\n    input: 'reads.fq'\n    output: 'map.bam'\n")
    (workdir / "reads.fq").write_text("@r1\nACGT\n+\nIIII\n")
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    meta = {"snakemake_version": "bench", "pox_version": "bench", "settings": {"backend": "sim"}}
    recorder = RunRecorder(workdir, runtime, snakefile=str(workdir / "Snakefile"), meta=meta)
    recorder.record_sources(["Snakefile"], {})
    facts = JobFacts(
        jobid=1,
        rule="map",
        attempt=1,
        inputs=("reads.fq",),
        outputs=(OutputFile("map.bam"),),
        logs=(),
        wildcards={"sample": "A"},
        params={"preset": "sr"},
        threads=4,
        resources={"mem_mb": 4000, "runtime": 30},
        shell_command="tr ACGT TGCA < reads.fq > map.bam",
        script=None,
        has_run_block=False,
        snakefile="Snakefile",
        conda_env=None,
        container=None,
        network=False,
    )
    spec = JobSpec(
        invocation_id="bench-1",
        command=facts.shell_command or "",
        workdir=workdir,
        outputs=(OutputSpec("map.bam"),),
        log_path=recorder.bundle.logs_dir / "bench-1.log",
    )
    outcome = runtime.run(spec, threading.Event())
    recorder.record(
        facts,
        outcome,
        input_digests=recorder.hash_inputs(facts),
        invocation_id="bench-1",
        job_log=spec.log_path,
    )
    recorder.finish("succeeded", [])
    for line in (recorder.bundle.path / "attestations.intoto.jsonl").read_bytes().splitlines():
        _, entry = decode_line(line, line_no=1)
        if isinstance(entry, JobRecord):
            return line
    raise SystemExit("no job record was written")


def verify_like_the_collector(line: bytes) -> JobRecord:
    """The head's per-statement work: decode, signature by a bound key, evidence."""
    envelope, entry = decode_line(line, line_no=1)
    assert isinstance(entry, JobRecord)
    keys = {k.keyid: k for k in (PublicKey.from_hex(h) for h in entry.binding.public_keys)}
    verify_envelope(envelope, keys)
    signer = next(iter(keys.values()))
    checked = check_evidence(
        entry.evidence,
        entry.binding,
        signer_public_hex=signer.hex(),
        allow_simulated=True,
        attested_at=entry.finished_on,
        builder_id=entry.builder_id,
    )
    assert checked.ok, checked.problems
    return entry


def real_evidence() -> dict[str, tuple[Evidence, Policy, datetime]]:
    """The TDX quote and SNP report of tests/enclave/vectors, with a policy and time they pass."""
    vectors = Path(__file__).resolve().parents[1] / "tests" / "enclave" / "vectors"
    tdx = Evidence(
        "tdx-quote",
        (vectors / "tdx-dcap" / "quote.bin").read_bytes(),
        {"collateral": json.loads((vectors / "tdx-dcap" / "collateral.json").read_text())},
    )
    snp = Evidence(
        "snp-report",
        bytes.fromhex((vectors / "sev-snp" / "report.hex").read_text().strip()),
        {
            "vcek": certificates_pem((vectors / "sev-snp" / "vcek.der").read_bytes(), where="vcek"),
            "cert_chain": (vectors / "sev-snp" / "cert_chain.pem").read_text(),
        },
    )
    tdx_policy = parse_policy(
        {"tdx": {"allow_dynamic_platform": True, "allow_cached_keys": True, "allow_smt": True}},
        source="bench",
    )
    at = datetime(2025, 7, 1, tzinfo=UTC)  # inside the vectors' collateral windows
    return {
        "tdx-quote": (tdx, tdx_policy, at),
        "snp-report": (snp, parse_policy({}, source="bench"), at),
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=50_000, help="log appends (default 50k)")
    parser.add_argument("--verifications", type=int, default=3_000)
    parser.add_argument("--signatures", type=int, default=3_000)
    parser.add_argument("--leaves", type=int, default=1_000_000, help="Merkle leaves appended")
    args = parser.parse_args()

    results: dict[str, Any] = {"target_jobs": TARGET_JOBS, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="pox-bench-scale-") as tmp:
        root = Path(tmp)
        line = record_one_statement(root / "wf")
        results["envelope_bytes"] = len(line)
        print(f"one real job envelope: {len(line):,} bytes")

        # 1. log append, group-committed, against writing the same bytes to an open file
        key = SigningKey.generate()
        raw_path = root / "raw.jsonl"

        def raw_writes() -> None:
            with open(raw_path, "ab") as handle:
                for _ in range(args.appends):
                    handle.write(line + b"\n")
            raw_path.unlink()

        raw_s = best_of(2, raw_writes)
        (root / "log").mkdir()
        log = RunLog(root / "log", "pox/run/bench", "bench", key)
        rss_before = rss_bytes()
        start = time.perf_counter()
        for _ in range(args.appends):
            log.append(line)
        log.close()
        append_s = time.perf_counter() - start
        gc.collect()
        rss_per_entry = (rss_bytes() - rss_before) / args.appends
        append_rate = args.appends / append_s
        results["log_append"] = {
            "appends": args.appends,
            "seconds": append_s,
            "per_second": append_rate,
            "baseline_raw_write_seconds": raw_s,
            "ratio_to_raw_write": append_s / raw_s,
            "rss_growth_bytes_per_entry": rss_per_entry,
        }
        print(
            f"log append: {append_rate:,.0f}/s ({append_s * 1e6 / args.appends:.1f} us each), "
            f"{append_s / raw_s:.1f}x a plain write of the same bytes; "
            f"{rss_per_entry:,.0f} bytes of memory per entry"
        )

        # 2. checkpoint: signing alone, and written to disk (fsync + sign + rename)
        cp = Checkpoint(origin="pox/run/bench", size=log.size, root=log.root())
        sign_s = best_of(
            2, lambda: [sign_checkpoint(cp, "bench", key) for _ in range(args.signatures)]
        )
        write_count = 200
        write_s = best_of(1, lambda: [log.write_checkpoint() for _ in range(write_count)])
        results["checkpoint"] = {
            "sign_us": sign_s / args.signatures * 1e6,
            "written_ms": write_s / write_count * 1e3,
            "per_second_written": write_count / write_s,
        }
        print(
            f"checkpoint: signed in {sign_s / args.signatures * 1e6:.0f} us, written (fsync, "
            f"sign, rename) in {write_s / write_count * 1e3:.2f} ms"
        )

        # 3. verification of one statement as the collector checks it, against Ed25519 alone
        signer = SigningKey.generate()
        message = b"x" * len(line)
        signature = signer.sign(message)
        public = PublicKey.from_hex(signer.public_key.hex())
        ed_s = best_of(
            2, lambda: [public.verify(signature, message) for _ in range(args.verifications)]
        )
        verify_s = best_of(
            2, lambda: [verify_like_the_collector(line) for _ in range(args.verifications)]
        )
        verify_rate = args.verifications / verify_s
        results["statement_verification"] = {
            "per_second_one_core": verify_rate,
            "us_each": verify_s / args.verifications * 1e6,
            "baseline_ed25519_verify_us": ed_s / args.verifications * 1e6,
            "ratio_to_ed25519_verify": verify_s / ed_s,
        }
        print(
            f"statement verification at the head: {verify_rate:,.0f}/s on one core "
            f"({verify_s / args.verifications * 1e6:.0f} us each, {verify_s / ed_s:.1f}x one "
            "Ed25519 verification)"
        )

        # 4. RFC 9162 compact tree growth
        leaf = merkle.leaf_hash(line)

        def grow() -> None:
            tree = merkle.CompactTree()
            for _ in range(args.leaves):
                tree.append(leaf)
            tree.root()

        tree_s = best_of(1, grow)
        results["merkle_append"] = {"leaves": args.leaves, "seconds": tree_s}
        print(f"Merkle compact tree: {args.leaves:,} leaves appended in {tree_s:.2f} s")

        # 5. real hardware evidence (the repository's TDX and SNP vectors): what the head, and
        # the key broker for every job's attestation, spends per verification with real TEEs
        hardware = {}
        count = 20
        for kind, (evidence, policy, at) in real_evidence().items():
            spent = best_of(
                2,
                lambda e=evidence, p=policy, t=at: [
                    verify_evidence(e, policy=p, at=t) for _ in range(count)
                ],
            )
            hardware[kind] = {"ms_each": spent / count * 1e3}
            print(f"{kind} verification (with its collateral): {spent / count * 1e3:.1f} ms")
        results["hardware_evidence_verification"] = hardware

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    n = TARGET_JOBS
    extrapolated = {
        "log_append_s": n / append_rate,
        "verification_cpu_s": n / verify_rate,
        "log_bytes": n * results["envelope_bytes"],
        "head_memory_for_log_bytes": n * rss_per_entry,
        "checkpoints_at_0_5_s": (n / append_rate) / 0.5,
        "merkle_s": tree_s * n / args.leaves,
    }
    results["extrapolated_1m_jobs"] = extrapolated
    results["peak_rss_bytes"] = peak
    print(f"\nfor {n:,} jobs on one head:")
    print(f"  log appends          {extrapolated['log_append_s']:,.0f} s of head time")
    print(f"  verification         {extrapolated['verification_cpu_s']:,.0f} CPU-s (one core)")
    print(f"  log file             {extrapolated['log_bytes'] / 2**30:.2f} GiB")
    print(f"  log state in memory  {extrapolated['head_memory_for_log_bytes'] / 2**20:,.0f} MiB")
    print(f"  Merkle tree          {extrapolated['merkle_s']:.1f} s")
    write_results("scale_head", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
