"""Per-job overhead of `--executor pox` against Snakemake's local executor, measured in one run.

241 trivial shell jobs, fan-out then fan-in (`--cores 2`): 239 `work` jobs from one seed file, one
`gather` job over all of them, and the `all` target. Three modes from clean directories: the
local executor (baseline), PoX without isolation, and PoX with the default sim backend
(bubblewrap + overlay, signed records), all with `--pox-chain none`. Each repeat runs the modes
back to back; ratios are taken within a repeat (target <= 1.5x, aim 1.2x for pox_sim). Writes
benchmarks/results/overhead.json. POX_BENCH_JOBS sets the number of `work` jobs, POX_BENCH_REPEATS
the repeats.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results
from _versus_local import POX, compare, print_ratios, run_snakemake

WORK_JOBS = int(os.environ.get("POX_BENCH_JOBS", "239"))
TARGET, AIM = 1.5, 1.2

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

MODES = {
    "local": [],
    "pox_no_isolation": [*POX, "--pox-no-isolation"],
    "pox_sim": POX,
}


def _fresh(root: Path, name: str) -> Path:
    workdir = root / name
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "seed.txt").write_text("seed\n")
    (workdir / "Snakefile").write_text(SNAKEFILE.format(jobs=WORK_JOBS))
    return workdir


def main() -> None:
    jobs = WORK_JOBS + 2
    print(f"bench_overhead: {jobs} trivial jobs, --cores 2")
    with tempfile.TemporaryDirectory(prefix="pox-bench-overhead-") as tmp:
        root = Path(tmp)
        result = compare(
            {
                name: (lambda _r, name=name, args=args: run_snakemake(_fresh(root, name), args))
                for name, args in MODES.items()
            }
        )
    local_median = result["seconds"]["local"]["median"]
    for name in ("pox_no_isolation", "pox_sim"):
        extra = result["seconds"][name]["median"] - local_median
        result.setdefault("overhead_per_job_ms_median", {})[name] = round(1000 * extra / jobs, 1)
    print_ratios(result, TARGET, AIM)
    print(f"  overhead per job (median): {result['overhead_per_job_ms_median']} ms")
    write_results("overhead", {"jobs": jobs, "target_ratio": TARGET, "aim_ratio": AIM, **result})


if __name__ == "__main__":
    main()
