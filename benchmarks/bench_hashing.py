"""Hashing throughput of PoX's Hasher against plain hashlib on the same files, same run.

Prints three ratios:
- single large file: PoX throughput / hashlib baseline (target: >= 0.9, i.e. near SHA-256 speed);
- four files: PoX (parallel) / hashlib (sequential);
- warm cache: time of a second PoX pass (digest cache hit) / first pass.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, write_results

from pox_executor.provenance.digests import DigestCache, Hasher

SIZE_MIB = int(os.environ.get("POX_BENCH_HASH_MIB", "1024"))


def _write(path: Path, size_mib: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as handle:
        for i in range(size_mib):
            handle.write(block[i % 256 :] + block[: i % 256])


def _hashlib_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("POX_BENCH_DIR", "/var/tmp")) as tmp:
        base = Path(tmp)
        big = base / "big.bin"
        _write(big, SIZE_MIB)
        parts = []
        for i in range(4):
            part = base / f"part{i}.bin"
            _write(part, SIZE_MIB // 4)
            parts.append(part)
        _hashlib_file(big)  # warm the page cache for both contenders

        baseline_s = best_of(3, lambda: _hashlib_file(big))
        pox_s = best_of(3, lambda: Hasher().digest_paths([big.name], base=base))
        mb = SIZE_MIB * 1.048576
        single_ratio = baseline_s / pox_s

        seq_s = best_of(3, lambda: [_hashlib_file(p) for p in parts])
        par_s = best_of(3, lambda: Hasher().digest_paths([p.name for p in parts], base=base))

        cache = DigestCache(base / "cache.sqlite")
        hasher = Hasher(cache)
        cold_s = best_of(1, lambda: hasher.digest_paths([big.name], base=base))
        warm_s = best_of(3, lambda: Hasher(cache).digest_paths([big.name], base=base))
        cache.close()

    result = {
        "size_mib": SIZE_MIB,
        "hashlib_single_mb_per_s": round(mb / baseline_s, 1),
        "pox_single_mb_per_s": round(mb / pox_s, 1),
        "single_file_throughput_ratio": round(single_ratio, 3),
        "four_files_hashlib_sequential_s": round(seq_s, 3),
        "four_files_pox_parallel_s": round(par_s, 3),
        "four_files_speedup_ratio": round(seq_s / par_s, 3),
        "cache_cold_s": round(cold_s, 4),
        "cache_warm_s": round(warm_s, 6),
        "cache_warm_over_cold_ratio": round(warm_s / cold_s, 6),
        "cpus": os.cpu_count(),
    }
    print(
        f"single {SIZE_MIB} MiB file: hashlib {result['hashlib_single_mb_per_s']} MB/s, "
        f"PoX {result['pox_single_mb_per_s']} MB/s -> ratio "
        f"{result['single_file_throughput_ratio']} (target >= 0.9)"
    )
    print(
        f"4 files x {SIZE_MIB // 4} MiB: sequential hashlib {seq_s:.3f} s, PoX parallel "
        f"{par_s:.3f} s -> speedup {result['four_files_speedup_ratio']}"
    )
    print(
        f"digest cache: cold {cold_s:.3f} s, warm {warm_s * 1000:.3f} ms -> ratio "
        f"{result['cache_warm_over_cold_ratio']}"
    )
    write_results("hashing", result)


if __name__ == "__main__":
    main()
