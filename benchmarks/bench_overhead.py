"""Per-job wall-time overhead of `--executor pox` against Snakemake's local executor, same run.

A synthetic workflow of N independent small shell jobs (plus a gather job) runs three ways from
a clean directory: the local executor (baseline), PoX without isolation, and PoX with the default
sim backend (bubblewrap + overlay, signed records). Prints total times, per-job overhead and the
ratio to the baseline; writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

JOBS = int(os.environ.get("POX_BENCH_JOBS", "20"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

SNAKEFILE = """
N = {jobs}
rule all:
    input: "gather.txt"
rule gather:
    input: expand("out/{{i}}.txt", i=range(N))
    output: "gather.txt"
    shell: "cat {{input}} | sha256sum > {{output}}"
rule work:
    input: "data/seed.txt"
    output: "out/{{i}}.txt"
    shell: "sha256sum {{input}} > {{output}}; echo {{wildcards.i}} >> {{output}}"
"""


def _run(workdir: Path, extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [SNAKEMAKE, "--cores", "2", "--quiet", "all", *extra],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _fresh(root: Path, name: str) -> Path:
    workdir = root / name
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "seed.txt").write_text("seed\n")
    (workdir / "Snakefile").write_text(SNAKEFILE.format(jobs=JOBS))
    return workdir


def main() -> None:
    modes = {
        "local": [],
        # Without the chain: bench_chain.py measures anchoring separately.
        "pox_no_isolation": ["--executor", "pox", "--pox-no-isolation", "--pox-chain", "none"],
        "pox_sim": ["--executor", "pox", "--pox-chain", "none"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        times = {name: _run(_fresh(root, name), extra) for name, extra in modes.items()}
    jobs = JOBS + 2
    base = times["local"]
    result: dict[str, object] = {
        "jobs": jobs,
        "seconds": {k: round(v, 3) for k, v in times.items()},
    }
    for name in ("pox_no_isolation", "pox_sim"):
        result[f"{name}_over_local_ratio"] = round(times[name] / base, 3)
        result[f"{name}_overhead_per_job_s"] = round((times[name] - base) / jobs, 3)
    for name, seconds in times.items():
        print(f"{name:18} {seconds:7.2f} s  ({seconds / jobs:.3f} s/job)")
    print(
        f"pox (sim) / local = {result['pox_sim_over_local_ratio']}, overhead "
        f"{result['pox_sim_overhead_per_job_s']} s per job"
    )
    write_results("overhead", result)


if __name__ == "__main__":
    main()
