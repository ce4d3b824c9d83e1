"""`--pox-sms`: a real Snakemake run whose enclave challenges are made and held by the broker.

The host keeps only key-less notes; the session's signed opening binds the session's challenge
and the job's record its own (per task: tests/sms/test_per_task_challenges.py); settlement gets a
key back only by attesting as that task's job (here with simulated evidence, which the broker's
policy must allow and which it logs as simulated).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from eth_account import Account
from poxrun import bundles, run_snakemake

from pox_executor.chain.actions import _enclave_key
from pox_executor.provenance.records import JobRecord, SessionOpen, read_entries
from pox_executor.sms import admin

pytestmark = pytest.mark.integration

SNAKEFILE = """
rule all:
    output: "out.txt"
    shell: "echo confidential > {output}"
"""


def test_run_with_broker_held_challenge(
    tmp_path: Path, module_broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = module_broker
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    monkeypatch.setenv("POX_SMS_TOKEN", broker.token)
    monkeypatch.setenv("SNAKEMAKE_POX_SMS", broker.url)
    run_snakemake(workdir)

    keys = workdir / ".pox" / "enclave-keys"
    notes = sorted(keys.glob("*.sms"))
    assert len(notes) == 2 and not list(keys.glob("*.key")), list(keys.iterdir())
    (bundle,) = bundles(workdir)
    entries = read_entries(bundle / "attestations.intoto.jsonl")
    opening = next(e for e in entries if isinstance(e, SessionOpen))
    (job,) = [e for e in entries if isinstance(e, JobRecord)]
    address = job.binding.enclave_challenge
    assert {opening.binding.enclave_challenge, address} == {n.stem for n in notes}
    note = json.loads((keys / f"{address}.sms").read_text())
    assert note["task_id"] == job.binding.task_id
    assert "key" not in json.dumps(note).lower().replace("enclave-keys", "")
    record = json.loads((broker.state_dir / "challenges" / f"{note['task_id']}.json").read_text())
    assert record["address"] == address and "box" in record

    # settlement: refused until a policy allows this job's (simulated) evidence for challenges
    from pox_executor.sms.client import BrokerRefused

    with pytest.raises(BrokerRefused) as caught:
        _enclave_key(workdir, address)
    assert caught.value.status == 403
    admin.put_policy(
        broker.url,
        broker.token,
        "session-challenges",
        {
            "resources": ["pox-task/*/enclave-challenge"],
            "allow_simulated": True,
            "attestation": {
                "allow_debug": True,
                "measurements": {"sim-report": [{"measurement": note["measurement"]}]},
            },
        },
    )
    key = _enclave_key(workdir, address)
    assert Account.from_key(key).address == address
    assert "SIMULATED evidence" in broker.log()
