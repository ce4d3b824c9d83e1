"""`--pox-sms`: PoCo's model, one enclave challenge per task, made and held by a real broker.

Each job record binds its own challenge (broker task id = the record's binding task id); the
host keeps only key-less notes; a job attested for one task cannot fetch another task's key; an
expired challenge is refused and its key deleted; and settlement on a real anvil
(`contributeAndFinalize` per task) signs each task's result with that task's challenge key,
obtained from the broker by attesting as the task's job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from ci_mode import missing_tool
from eth_account import Account
from poxrun import only_bundle, run_snakemake

from pox_executor.chain import localnet
from pox_executor.chain.actions import _enclave_key
from pox_executor.chain.devnet import find_anvil
from pox_executor.enclave.producers import detect_producer
from pox_executor.provenance.records import JobRecord, SessionOpen, read_entries
from pox_executor.sms import admin
from pox_executor.sms.challenges import challenge_resource
from pox_executor.sms.client import BrokerRefused, KbsClient
from pox_executor.sms.scheduler import DEFAULT_VALIDITY_S, BrokerChallengeSource

pytestmark = pytest.mark.integration

SNAKEFILE = """
rule all:
    input: "out/a.txt", "out/b.txt"
rule make:
    output: "out/{name}.txt"
    shell: "echo {wildcards.name} > {output}"
"""


@pytest.fixture(scope="module")
def local_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """PoX's local devnet (anvil) in a private data directory; its POX_DATA_DIR."""
    if find_anvil() is None:
        missing_tool("anvil not installed: run `bash contracts/scripts/setup.sh`")
    data = str(tmp_path_factory.mktemp("pox-data"))
    old = os.environ.get("POX_DATA_DIR")
    os.environ["POX_DATA_DIR"] = data
    try:
        localnet.ensure_deployed(localnet.start())
        time.sleep(1.5)  # anvil dumps its state every second: the deployment is on disk
        yield data
    finally:
        localnet.stop()
        if old is None:
            os.environ.pop("POX_DATA_DIR", None)
        else:
            os.environ["POX_DATA_DIR"] = old


def _allow_challenges(broker: BrokerProcess, measurement: str) -> None:
    admin.put_policy(
        broker.url,
        broker.token,
        "task-challenges",
        {
            "resources": ["pox-task/*/enclave-challenge"],
            "allow_simulated": True,
            "attestation": {
                "allow_debug": True,
                "measurements": {"sim-report": [{"measurement": measurement}]},
            },
        },
    )


def _pox(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_one_challenge_per_task_and_settlement_signs_with_each(
    tmp_path: Path,
    broker: BrokerProcess,
    local_chain: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    monkeypatch.setenv("POX_SMS_TOKEN", broker.token)
    monkeypatch.setenv("SNAKEMAKE_POX_SMS", broker.url)
    started = time.time()
    run_snakemake(workdir)  # --pox-chain none (poxrun): settled below with `pox anchor`

    entries = read_entries(only_bundle(workdir) / "attestations.intoto.jsonl")
    jobs = [e for e in entries if isinstance(e, JobRecord)]
    (opening,) = [e for e in entries if isinstance(e, SessionOpen)]
    addresses = [j.binding.enclave_challenge for j in jobs]
    assert len(jobs) == 3 and None not in addresses
    assert len({*addresses, opening.binding.enclave_challenge}) == 4  # per task, not per session
    keys = workdir / ".pox" / "enclave-keys"
    assert not list(keys.glob("*.key"))  # the host made no key
    notes = {}
    for job in jobs:
        note = json.loads((keys / f"{job.binding.enclave_challenge}.sms").read_text())
        assert note["task_id"] == job.binding.task_id  # the record's own task id
        record = json.loads(
            (broker.state_dir / "challenges" / f"{note['task_id']}.json").read_text()
        )
        assert record["address"] == job.binding.enclave_challenge and "box" in record
        assert (
            started + DEFAULT_VALIDITY_S - 5
            <= record["deadline"]
            <= time.time() + DEFAULT_VALIDITY_S
        )
        notes[note["task_id"]] = note

    # no policy allows these jobs' evidence yet: the broker releases nothing
    with pytest.raises(BrokerRefused) as refused:
        _enclave_key(workdir, addresses[0])
    assert refused.value.status == 403
    measurement = next(iter(notes.values()))["measurement"]
    _allow_challenges(broker, measurement)

    # a job attested for task A gets A's key, and is refused B's
    task_a, task_b = jobs[0].binding.task_id, jobs[1].binding.task_id
    client = KbsClient(
        broker.url, producer=detect_producer("sim", measurement=measurement), task_id=task_a
    )
    key_a = client.get_resource(challenge_resource(task_a)).decode().strip()
    assert Account.from_key(key_a).address == addresses[0]
    with pytest.raises(BrokerRefused) as foreign:
        client.get_resource(challenge_resource(task_b))
    assert foreign.value.status == 403

    # settlement: one deal and contributeAndFinalize per task, each signed with its challenge
    anchored = _pox(workdir, "anchor", "--deals", "per-job")
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    journal = json.loads((only_bundle(workdir) / "chain.json").read_text())
    finalized = [a["params"]["enclave"] for a in journal["actions"] if a["kind"] == "finalize"]
    assert sorted(finalized) == sorted(addresses)
    assert all(a["status"] == "done" for a in journal["actions"])
    verified = _pox(workdir, "verify", "--allow-simulated", "--json")
    report = json.loads(verified.stdout)
    assert report["ok"] and report["facts"]["tasks_completed"] == 3, report
    assert "SIMULATED evidence" in broker.log()


def test_expired_challenge_is_refused_and_deleted(tmp_path: Path, broker: BrokerProcess) -> None:
    measurement = "ee" * 32
    _allow_challenges(broker, measurement)
    source = BrokerChallengeSource(
        broker.url, broker.token, tmp_path, measurement=measurement, validity_s=2
    )
    task = "0x" + "5a" * 32
    address = source(task)
    assert Account.from_key(_enclave_key(tmp_path, address)).address == address  # while valid
    state = broker.state_dir / "challenges" / f"{task}.json"
    deadline = json.loads(state.read_text())["deadline"]
    time.sleep(max(0.0, deadline - time.time()) + 1.5)  # past it, and a sweep (every second)
    record = json.loads(state.read_text())
    assert record["deleted"] is True and "box" not in record  # the key is gone from the broker
    with pytest.raises(BrokerRefused) as expired:
        _enclave_key(tmp_path, address)
    assert expired.value.status == 403 and "expired" in expired.value.detail
