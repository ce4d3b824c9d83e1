"""One job writing a 1 GiB output, under `--executor pox` against the local executor, one run.

Target: <= 1.2x, and PoX may read the file at most once more than the local executor (to hash
it). The extra time is also expressed in units of one SHA-256 pass over the file, measured here
in the same run (`extra_in_hash_passes`): about 1 means one extra read, more means copies or
re-reads. Writes benchmarks/results/large_output.json. POX_BENCH_OUTPUT_MIB sets the size.

Time is an indirect count, so the reads are also counted directly: one more run per mode
under `strace -f -y` with a smaller file (POX_BENCH_TRACE_MIB, default 64) sums the bytes that
every process read from (or copied out of) the output file, in units of the file's size
(`reads_of_output`): the local executor reads it 0 times, PoX may read it once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results
from _versus_local import POX, SNAKEMAKE, Timing, compare, print_ratios, run_snakemake

SIZE_MIB = int(os.environ.get("POX_BENCH_OUTPUT_MIB", "1024"))
TRACE_MIB = int(os.environ.get("POX_BENCH_TRACE_MIB", "64"))
# A syscall that reads or copies file data, on an fd strace -y shows as `<path>`, and its result.
_READ_CALL = re.compile(
    r"^\d+\s+(read|pread64|readv|preadv|preadv2|copy_file_range|sendfile|splice)"
    r"\((\d+)<([^>]*)>.*\)\s+=\s+(\d+)"
)
TARGET = 1.2

SNAKEFILE = """
rule all:
    input: "big.bin"
rule big:
    output: "big.bin"
    shell: "head -c {size} /dev/zero > {{output}}"
"""

MODES = {"local": [], "pox_sim": POX}


def _fresh(root: Path, name: str, size_mib: int = SIZE_MIB) -> Path:
    workdir = root / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(SNAKEFILE.format(size=size_mib * 1024 * 1024))
    return workdir


def _reads_of_output(root: Path, name: str, args: list[str]) -> float | None:
    """How many times the run read big.bin (bytes read or copied from it / its size), counted
    with strace over every process of the run; None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    workdir = _fresh(root, f"trace-{name}", TRACE_MIB)
    trace = root / f"trace-{name}.txt"
    calls = "read,pread64,readv,preadv,preadv2,copy_file_range,sendfile,splice"
    command = [strace, "-f", "-y", "-qq", "-e", f"trace={calls}", "-e", "signal=none"]
    command += ["-o", str(trace), SNAKEMAKE, "--cores", "2", "--quiet", *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout[-2000:] + result.stderr[-2000:]
        raise RuntimeError(f"traced run {name} failed:\n{output}")
    read = 0
    with open(trace, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = _READ_CALL.match(line)
            if match and os.path.basename(match.group(3)) == "big.bin":
                read += int(match.group(4))
    shutil.rmtree(workdir)
    trace.unlink()
    return read / (TRACE_MIB * 1024 * 1024)


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
        reads = {name: _reads_of_output(root, name, args) for name, args in MODES.items()}
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
    result["reads_of_output"] = reads
    print_ratios(result, TARGET)
    if reads["pox_sim"] is not None:
        verdict = "meets" if (reads["pox_sim"] - (reads["local"] or 0)) <= 1.0 else "MISSES"
        print(
            f"  reads of the output ({TRACE_MIB} MiB, strace): local {reads['local']:.2f}x, "
            f"pox {reads['pox_sim']:.2f}x its size ({verdict}: at most one extra read)"
        )
    print(
        f"  pox extra time = {result['extra_in_hash_passes']['median']} SHA-256 passes over "
        f"the file (median; one pass took {min(hash_s):.2f} s)"
    )
    write_results("large_output", {"size_mib": SIZE_MIB, "target_ratio": TARGET, **result})


if __name__ == "__main__":
    main()
