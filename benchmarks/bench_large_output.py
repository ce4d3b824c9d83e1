"""One job writing a 1 GiB output, under `--executor pox` against the local executor, one run.

Target: <= 1.2x, and PoX may read the file at most once more than the local executor (to hash
it). The extra time is also expressed in units of one SHA-256 pass over the file, measured here
in the same run (`extra_in_hash_passes`): about 1 means one extra read, more means copies or
re-reads. Writes benchmarks/results/large_output.json. POX_BENCH_OUTPUT_MIB sets the size.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results
from _versus_local import POX, Timing, compare, print_ratios, run_snakemake

SIZE_MIB = int(os.environ.get("POX_BENCH_OUTPUT_MIB", "1024"))
TARGET = 1.2

SNAKEFILE = """
rule all:
    input: "big.bin"
rule big:
    output: "big.bin"
    shell: "head -c {size} /dev/zero > {{output}}"
"""

MODES = {"local": [], "pox_sim": POX}


def _fresh(root: Path, name: str) -> Path:
    workdir = root / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(SNAKEFILE.format(size=SIZE_MIB * 1024 * 1024))
    return workdir


def _hash_seconds(path: Path) -> float:
    """Wall time of one SHA-256 pass over `path` (warm page cache, as PoX would see it)."""
    start = time.perf_counter()
    with open(path, "rb") as handle:
        hashlib.file_digest(handle, "sha256")
    return time.perf_counter() - start


def main() -> None:
    print(f"bench_large_output: one job writing {SIZE_MIB} MiB")
    hash_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pox-bench-large-") as tmp:
        root = Path(tmp)

        def run(name: str, args: list[str]) -> Timing:
            workdir = _fresh(root, name)
            timing = run_snakemake(workdir, args)
            if name == "local":
                hash_s.append(_hash_seconds(workdir / "big.bin"))
            shutil.rmtree(workdir)
            return timing

        result = compare(
            {name: (lambda _r, n=name, a=args: run(n, a)) for name, args in MODES.items()}
        )
    extra = [
        (pox - local) / h
        for pox, local, h in zip(
            result["seconds"]["pox_sim"]["each"],
            result["seconds"]["local"]["each"],
            hash_s,
            strict=True,
        )
    ]
    result["hash_pass_s"] = [round(h, 3) for h in hash_s]
    result["extra_in_hash_passes"] = {
        "each": [round(e, 2) for e in extra],
        "min": round(min(extra), 2),
        "median": round(sorted(extra)[len(extra) // 2], 2),
    }
    print_ratios(result, TARGET)
    print(
        f"  pox extra time = {result['extra_in_hash_passes']['median']} SHA-256 passes over "
        f"the file (median; one pass took {min(hash_s):.2f} s)"
    )
    write_results("large_output", {"size_mib": SIZE_MIB, "target_ratio": TARGET, **result})


if __name__ == "__main__":
    main()
