"""Throughput of confidential-dataset encryption and of offline CID computation.

- encrypt / decrypt: `pox-aes256gcm-v1` (chunked AES-256-GCM, header, per-chunk nonces, and the
  SHA-256 checksum of the ciphertext computed in the same pass) against `cryptography`'s raw
  AES-256-GCM over the same bytes in one call (no chunking, no checksum). Target >= 0.8x.
- CID: the UnixFS importer (`kubo-cidv1` and `unixfs-v0-2015` profiles: chunking, one SHA-256
  per leaf, dag-pb nodes) against one SHA-256 pass over the same bytes.

Everything in memory (a null sink), so disk speed does not blur the ratio. The machines are
shared: each repeat measures baseline and candidate back to back and takes their ratio; the
report gives the best and the median ratio. `--mib` sets the data size (default 256),
`POX_BENCH_REPEATS` the repeats (default 3). Writes benchmarks/results/datasets.json; exits 1
when the median encrypt or decrypt ratio is below 0.8.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pox_executor.datasets.encryption import decrypt_stream, encrypt_stream
from pox_executor.storage.unixfs import get_profile, import_bytes

TARGET = 0.8


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _compare(
    repeats: int, baseline: Callable[[], object], candidate: Callable[[], object], size: int
) -> dict[str, float]:
    ratios, base_rates, cand_rates = [], [], []
    for _ in range(repeats):
        base = _seconds(baseline)
        cand = _seconds(candidate)
        ratios.append(base / cand)  # candidate throughput relative to the baseline's
        base_rates.append(size / base / 1e6)
        cand_rates.append(size / cand / 1e6)
    return {
        "ratio_best": max(ratios),
        "ratio_median": statistics.median(ratios),
        "baseline_mb_s": max(base_rates),
        "candidate_mb_s": max(cand_rates),
    }


def _cid_of(data: bytes, profile_name: str) -> Callable[[], object]:
    profile = get_profile(profile_name)
    return lambda: import_bytes(data, profile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    repeats = int(os.environ.get("POX_BENCH_REPEATS", "3"))
    size = args.mib << 20
    data = os.urandom(size)
    key = AESGCM.generate_key(256)
    sealed = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sealed, key)
    ciphertext = sealed.getvalue()
    raw_ciphertext = AESGCM(key).encrypt(b"\0" * 12, data, None)

    results = {
        "size_bytes": size,
        "repeats": repeats,
        "load_average": os.getloadavg()[0],
        "encrypt": _compare(
            repeats,
            lambda: AESGCM(key).encrypt(b"\0" * 12, data, None),
            lambda: encrypt_stream(io.BytesIO(data), _Null(), key),
            size,
        ),
        "decrypt": _compare(
            repeats,
            lambda: AESGCM(key).decrypt(b"\0" * 12, raw_ciphertext, None),
            lambda: decrypt_stream(io.BytesIO(ciphertext), _Null(), key),
            size,
        ),
    }
    for profile in ("kubo-cidv1", "unixfs-v0-2015"):
        results[f"cid_{profile}"] = _compare(
            repeats, lambda: hashlib.sha256(data).digest(), _cid_of(data, profile), size
        )
    print(f"{args.mib} MiB in memory, {repeats} repeats, load {results['load_average']:.1f}")
    for name, baseline in (
        ("encrypt", "raw AES-256-GCM"),
        ("decrypt", "raw AES-256-GCM"),
        ("cid_kubo-cidv1", "SHA-256 alone"),
        ("cid_unixfs-v0-2015", "SHA-256 alone"),
    ):
        row = results[name]
        assert isinstance(row, dict)
        print(
            f"{name:20s} {row['candidate_mb_s']:8.0f} MB/s vs {baseline} "
            f"{row['baseline_mb_s']:6.0f} MB/s: ratio best {row['ratio_best']:.2f}x, "
            f"median {row['ratio_median']:.2f}x"
        )
    write_results("datasets", results)
    worst = min(results["encrypt"]["ratio_median"], results["decrypt"]["ratio_median"])  # type: ignore[index]
    if worst < TARGET:
        print(f"encrypt/decrypt below the {TARGET}x target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
