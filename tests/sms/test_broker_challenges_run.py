"""`--pox-sms`: a real Snakemake run whose enclave challenge is made and held by the broker.

The host keeps only a key-less note; the session's signed opening binds the broker's address;
settlement gets the key back only by attesting as that session's job (here with simulated
evidence, which the broker's policy must allow and which it logs as simulated).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from eth_account import Account
from poxrun import bundles, run_snakemake

from pox_executor.chain.actions import _enclave_key
from pox_executor.provenance.records import SessionOpen, read_entries
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
    assert len(notes) == 1 and not list(keys.glob("*.key")), list(keys.iterdir())
    address = notes[0].stem
    note = json.loads(notes[0].read_text())
    assert "key" not in json.dumps(note).lower().replace("enclave-keys", "")
    (bundle,) = bundles(workdir)
    opening = next(
        e for e in read_entries(bundle / "attestations.intoto.jsonl") if isinstance(e, SessionOpen)
    )
    assert opening.binding.enclave_challenge == address
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
