"""Key broker on loopback: attest-and-release latency (p50/p99) and releases per second.

Starts a real `pox sms serve` process, stores one secret under a policy that allows simulated
evidence, then measures, in the same run:
- baseline: one `POST /kbs/v0/auth` round trip (the cheapest request the broker answers);
- attest-and-release: a fresh job's whole protocol (auth, evidence, attest, resource, JWE
  decrypt), sequentially, as p50/p99 latency and as a ratio to the baseline;
- releases/s with `POX_BENCH_SMS_CLIENTS` concurrent fresh jobs (default 8), and with one
  attested session re-used for every fetch (what a job fetching several secrets pays).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sms"))
from _common import write_results
from broker_process import BrokerProcess

from pox_executor.enclave.producers import SimProducer
from pox_executor.sms import admin
from pox_executor.sms.client import KbsClient

ROUNDS = int(os.environ.get("POX_BENCH_SMS_ROUNDS", "300"))
CLIENTS = int(os.environ.get("POX_BENCH_SMS_CLIENTS", "8"))
RESOURCE = "bench/key/one"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _auth_once(url: str) -> None:
    request = urllib.request.Request(
        f"{url}/kbs/v0/auth",
        data=json.dumps({"version": "0.4.0", "tee": "sample", "extra-params": ""}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _attest_and_release(url: str, producer: SimProducer) -> float:
    start = time.perf_counter()
    value = KbsClient(url, producer=producer).get_resource(RESOURCE)
    elapsed = time.perf_counter() - start
    assert value == b"benchmark secret"
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "state", extra_args=["--quiet"])
        broker.start()
        try:
            admin.put_policy(
                broker.url,
                broker.token,
                "bench",
                {
                    "resources": ["bench/*/*"],
                    "allow_simulated": True,
                    "attestation": {"allow_debug": True},
                },
            )
            admin.put_secret(broker.url, RESOURCE, b"benchmark secret", token=broker.token)
            producer = SimProducer("bench-image")
            for _ in range(20):  # warm up both paths
                _auth_once(broker.url)
                _attest_and_release(broker.url, producer)

            auth_times = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                _auth_once(broker.url)
                auth_times.append(time.perf_counter() - start)
            latencies = [_attest_and_release(broker.url, producer) for _ in range(ROUNDS)]

            start = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(lambda _: _attest_and_release(broker.url, producer), range(ROUNDS)))
            concurrent_rate = ROUNDS / (time.perf_counter() - start)

            session = KbsClient(broker.url, producer=producer)
            session.attest()
            start = time.perf_counter()
            for _ in range(ROUNDS):
                session.get_resource(RESOURCE)
            reuse_rate = ROUNDS / (time.perf_counter() - start)
        finally:
            broker.stop()

    auth_p50 = statistics.median(auth_times)
    p50 = statistics.median(latencies)
    p99 = _percentile(latencies, 0.99)
    print(f"baseline: one /auth round trip p50 {auth_p50 * 1e3:.2f} ms")
    print(
        f"attest-and-release (fresh job, sequential, {ROUNDS} rounds): p50 {p50 * 1e3:.2f} ms, "
        f"p99 {p99 * 1e3:.2f} ms = {p50 / auth_p50:.1f}x one round trip"
    )
    print(f"releases/s, {CLIENTS} concurrent fresh jobs: {concurrent_rate:.0f}")
    print(f"releases/s, one attested session re-used: {reuse_rate:.0f}")
    write_results(
        "bench_sms",
        {
            "rounds": ROUNDS,
            "clients": CLIENTS,
            "auth_round_trip_p50_ms": auth_p50 * 1e3,
            "attest_and_release_p50_ms": p50 * 1e3,
            "attest_and_release_p99_ms": p99 * 1e3,
            "ratio_p50_to_round_trip": p50 / auth_p50,
            "releases_per_s_concurrent": concurrent_rate,
            "releases_per_s_reused_session": reuse_rate,
        },
    )


if __name__ == "__main__":
    main()
