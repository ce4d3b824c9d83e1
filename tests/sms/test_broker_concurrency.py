"""50 concurrent jobs attest and fetch while the broker restarts under them: nothing is lost.

Each client uploads its own secret (retrying while the broker is down), then attests and fetches
it several times; the broker is stopped with SIGTERM and started again on the same port and state
while they run. Every acknowledged upload must be readable afterwards and every client must get
exactly its own value.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from broker_process import BrokerProcess

from pox_executor.enclave.producers import SimProducer
from pox_executor.errors import PoxError
from pox_executor.sms import admin
from pox_executor.sms.client import BrokerRefused, KbsClient

pytestmark = pytest.mark.integration

CLIENTS = 50
ROUNDS = 4


def test_fifty_clients_and_a_restart(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "state")
    broker.start()
    token = broker.token
    admin.put_policy(
        broker.url,
        token,
        "jobs",
        {"resources": ["jobs/*/*"], "allow_simulated": True, "attestation": {"allow_debug": True}},
    )
    url = broker.url
    acknowledged: set[int] = set()
    fetched: dict[int, int] = {}
    lock = threading.Lock()
    restart_after = threading.Event()

    def upload(index: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                admin.put_secret(url, f"jobs/{index}/key", f"secret-{index}".encode(), token=token)
                break
            except BrokerRefused:
                raise
            except PoxError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with lock:
            acknowledged.add(index)

    def job(index: int) -> None:
        upload(index)
        kbs = KbsClient(url, producer=SimProducer("job-image"), retry_s=60)
        for _ in range(ROUNDS):
            value = kbs.get_resource(f"jobs/{index}/key")
            assert value == f"secret-{index}".encode()
            with lock:
                fetched[index] = fetched.get(index, 0) + 1
                if sum(fetched.values()) >= CLIENTS:
                    restart_after.set()
            time.sleep(0.05)

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(job, index) for index in range(CLIENTS)]
            assert restart_after.wait(120), "clients made no progress"
            with lock:
                before_restart = sum(fetched.values())
            broker.restart()  # same port, same state directory
            for future in futures:
                future.result(timeout=180)
        assert before_restart < CLIENTS * ROUNDS, "the restart came after the clients finished"
        assert broker.log().count("listening on") == 2
        assert acknowledged == set(range(CLIENTS))
        assert fetched == dict.fromkeys(range(CLIENTS), ROUNDS)
        # after the restart every acknowledged secret is still there
        probe = KbsClient(url, producer=SimProducer("job-image"))
        for index in sorted(acknowledged):
            assert probe.get_resource(f"jobs/{index}/key") == f"secret-{index}".encode()
        assert "Traceback" not in broker.log()
    finally:
        broker.stop()
