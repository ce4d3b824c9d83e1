"""Cost of anchoring runs on a bloxberg-like local devnet: gas per job in each deals mode and the
wall-time overhead of anchoring relative to `--pox-chain none`.

Two workloads: the example workflow (workflows/variant-calling, 2 cores) and a synthetic
workflow of `--jobs` (default 1,000) trivial shell jobs. Each is run with `--pox-chain none`
and with `--pox-chain local --pox-deals batched` (and, for the example, `per-job` and `none`
deals), each in a fresh copy, on one devnet started (and contracts deployed) beforehand, as
after the first use on a machine. Wall-time overhead = (time with chain - time without) / time
without. Because whole-run times of a few seconds are noisy, it also reports the settlement
time alone: the run's chain work replayed on a copy of the `--pox-chain none` bundle with
`pox_executor.chain.settle` (the code the executor runs at the end of a run), which is also how
gas per job is measured for the synthetic workload's `per-job` and `batched` modes (1,000 real
records from the real run; no 1,000-job per-job workflow is run twice). Gas per job counts every
transaction of the run, one-time app and pool registrations included, and is also given without
them. Target: batched overhead <= 10% of the run's wall time. Writes
benchmarks/results/chain.json; exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results

from pox_executor.chain.journal import Journal, load_journal
from pox_executor.provenance.bundle import RunBundle

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "workflows" / "variant-calling"
ONE_TIME = ("register_app", "create_pool")


def synthetic_snakefile(jobs: int) -> str:
    return (
        f'rule all:\n    input: expand("out/{{i}}.txt", i=range({jobs}))\n'
        'rule make:\n    output: "out/{i}.txt"\n    shell: "echo {wildcards.i} > {output}"\n'
    )


def fresh_copy(source: Path | None, snakefile: str | None, parent: Path, name: str) -> Path:
    target = parent / name
    if source is not None:
        shutil.copytree(
            source,
            target,
            ignore=shutil.ignore_patterns(".pox", ".snakemake", "results", "work", "out"),
        )
    else:
        target.mkdir()
        assert snakefile is not None
        (target / "Snakefile").write_text(snakefile)
    return target


def run(workdir: Path, *args: str) -> float:
    env = dict(os.environ, XDG_CACHE_HOME=str(workdir.parent / f".{workdir.name}-cache"))
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "2", "-q", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if "rror" in ln or "exit code" in ln]
        logs = sorted((workdir / ".pox" / "runs").glob("*/logs/*.log"))
        raise SystemExit(
            f"{workdir}: snakemake failed\n" + "\n".join(errors[-20:]) + f"\n({len(logs)} job logs)"
        )
    return elapsed


def bundle_of(workdir: Path) -> Path:
    (bundle,) = list((workdir / ".pox" / "runs").iterdir())
    return bundle


def gas_of(journal: Journal) -> dict[str, Any]:
    actions = [a for a in journal.actions if a.gas_used]
    records = len(journal.records)
    total = sum(int(a.gas_used or 0) for a in actions)
    steady = sum(int(a.gas_used or 0) for a in actions if a.kind not in ONE_TIME)
    by_kind: dict[str, int] = {}
    for a in actions:
        by_kind[a.kind] = by_kind.get(a.kind, 0) + int(a.gas_used or 0)
    return {
        "records": records,
        "transactions": len(actions),
        "gas_total": total,
        "gas_per_job": total / records if records else 0,
        "gas_per_job_without_registrations": steady / records if records else 0,
        "gas_by_kind": by_kind,
    }


def settle_copy(workdir: Path, parent: Path, name: str, deals: str) -> dict[str, Any]:
    """Replay the chain work of a `--pox-chain none` run on a copy; time and gas."""
    from pox_executor.chain.client import connect
    from pox_executor.chain.profiles import load_profile
    from pox_executor.chain.settle import settle

    copy = parent / name
    shutil.copytree(workdir / ".pox", copy / ".pox")
    bundle = RunBundle.load(bundle_of(copy))
    profile = load_profile("local")
    assert profile is not None
    client = connect(profile, deadline=time.monotonic() + 60)
    start = time.perf_counter()
    result = settle(bundle, client, deals=deals, deadline=time.monotonic() + 600)
    elapsed = time.perf_counter() - start
    if result.error:
        raise SystemExit(f"settlement failed: {result.error}")
    journal = load_journal(bundle)
    assert journal is not None
    return {"settle_s": elapsed, **gas_of(journal)}


def workload(
    label: str,
    source: Path | None,
    snakefile: str | None,
    modes: list[str],
    replay_modes: list[str],
    tmp: Path,
) -> dict[str, Any]:
    print(f"== {label}")
    base = fresh_copy(source, snakefile, tmp, f"{label}-nochain")
    t_none = run(base, "--pox-chain", "none")
    print(f"  --pox-chain none: {t_none:.2f} s")
    out: dict[str, Any] = {"wall_s_chain_none": t_none, "modes": {}}
    for deals in modes:
        workdir = fresh_copy(source, snakefile, tmp, f"{label}-{deals}")
        elapsed = run(workdir, "--pox-chain", "local", "--pox-deals", deals)
        journal = load_journal(RunBundle.load(bundle_of(workdir)))
        assert journal is not None
        pending = journal.pending()
        row = {
            "wall_s": elapsed,
            "overhead_pct": 100 * (elapsed - t_none) / t_none,
            "pending_actions": pending,
            **gas_of(journal),
        }
        out["modes"][deals] = row
        print(
            f"  local, deals {deals:<8}: {elapsed:.2f} s ({row['overhead_pct']:+.1f}%), "
            f"{row['gas_per_job']:,.0f} gas/job ({row['gas_per_job_without_registrations']:,.0f}"
            f" without registrations), {row['transactions']} txs"
        )
    out["replayed"] = {}
    for deals in replay_modes:
        row = settle_copy(base, tmp, f"{label}-replay-{deals}", deals)
        row["settle_pct_of_run"] = 100 * row["settle_s"] / t_none
        out["replayed"][deals] = row
        print(
            f"  settlement alone, deals {deals:<8}: {row['settle_s']:.2f} s "
            f"({row['settle_pct_of_run']:.1f}% of the run), {row['gas_per_job']:,.0f} gas/job "
            f"({row['gas_per_job_without_registrations']:,.0f} without registrations), "
            f"{row['transactions']} txs"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="synthetic workflow size")
    parser.add_argument("--skip-example", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pox-bench-chain-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["POX_DATA_DIR"] = str(tmp / "data")
        from pox_executor.chain import localnet

        node = localnet.start()
        localnet.ensure_deployed(node)
        try:
            results: dict[str, Any] = {
                "chain": {"profile": "local", "chain_id": 8995, "hardfork": "istanbul"},
                "cores": 2,
            }
            if not args.skip_example:
                results["example"] = workload(
                    "variant-calling",
                    EXAMPLE,
                    None,
                    ["batched", "per-job", "none"],
                    ["batched", "per-job"],
                    tmp,
                )
            results["synthetic"] = workload(
                f"synthetic-{args.jobs}",
                None,
                synthetic_snakefile(args.jobs),
                ["batched"],
                ["batched", "per-job"],
                tmp,
            )
            results["synthetic"]["jobs"] = args.jobs
        finally:
            localnet.stop()
    checks = {}
    for name in ("example", "synthetic"):
        if name in results:
            batched = results[name]["modes"]["batched"]
            settle_pct = results[name]["replayed"]["batched"]["settle_pct_of_run"]
            checks[f"{name}_batched_overhead_at_most_10pct"] = (
                batched["overhead_pct"] <= 10 or settle_pct <= 10
            )
            checks[f"{name}_nothing_pending"] = batched["pending_actions"] == 0
    results["checks"] = checks
    for check, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {check}")
    write_results("chain", results)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
