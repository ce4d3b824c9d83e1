"""Every refusal of the key broker, each against a running `pox sms serve` process.

No evidence, wrong or replayed nonce, evidence bound to another key, real hardware evidence not
bound to this session, simulated evidence without the policy's consent, a measurement the policy
does not list, debug when forbidden, an expired challenge, another task's challenge, and an upload
signed by someone who does not own the resource. Each refusal has its status and says why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from broker_process import BrokerProcess
from eth_account import Account
from kbs_steps import RawSession

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.producers import SimProducer
from pox_executor.enclave.verifiers.inputs import certificates_pem
from pox_executor.sms import admin, client
from pox_executor.sms.client import BrokerRefused

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(module_broker: BrokerProcess) -> BrokerProcess:
    return module_broker


TASK_A = "0x" + "aa" * 32
TASK_B = "0x" + "bb" * 32


def sim_policy(measurement: str = "cohort-image", **attestation: Any) -> dict[str, Any]:
    return {
        "resources": ["cohort/key/*", "pox-task/*/enclave-challenge"],
        "allow_simulated": True,
        "attestation": {
            "allow_debug": True,
            "measurements": {"sim-report": [{"measurement": measurement}]},
            **attestation,
        },
    }


def setup_secret(broker: BrokerProcess, policy: dict[str, Any]) -> None:
    admin.put_policy(broker.url, broker.token, "cohort", policy)
    admin.put_secret(broker.url, "cohort/key/v1", b"the dataset key", token=broker.token)


def test_release_to_allowed_simulated_job_is_logged_as_simulated(broker: BrokerProcess) -> None:
    setup_secret(broker, sim_policy())
    value = client.fetch_resource(broker.url, "cohort/key/v1", producer=SimProducer("cohort-image"))
    assert value == b"the dataset key"
    releases = (broker.state_dir / "releases.jsonl").read_text().splitlines()
    entry = json.loads(releases[-1])
    assert entry["simulated"] is True and entry["resource"] == "cohort/key/v1"
    assert "SIMULATED evidence" in broker.log()
    assert "the dataset key" not in broker.log()


def test_no_evidence(broker: BrokerProcess) -> None:
    session = RawSession(broker.url)
    status, body = session.attest({"runtime-data": session.runtime_data()})
    assert status == 401 and "no evidence" in body["detail"]
    status, body = session.resource("cohort/key/v1")
    assert status == 401  # not attested


def test_wrong_nonce(broker: BrokerProcess) -> None:
    session = RawSession(broker.url)
    other = RawSession(broker.url)  # a foreign nonce: another session's challenge
    runtime = session.runtime_data(nonce=other.nonce)
    evidence = session.evidence_for(SimProducer("cohort-image"), runtime)
    status, body = session.attest(
        {"runtime-data": runtime, "tee-evidence": {"primary_evidence": evidence}}
    )
    assert status == 401 and "nonce" in body["detail"]


def test_replayed_nonce(broker: BrokerProcess) -> None:
    setup_secret(broker, sim_policy())
    session = RawSession(broker.url)
    runtime = session.runtime_data()
    payload = {
        "runtime-data": runtime,
        "tee-evidence": {
            "primary_evidence": session.evidence_for(SimProducer("cohort-image"), runtime)
        },
    }
    assert session.attest(payload)[0] == 200
    status, body = session.attest(payload)
    assert status == 401 and body["type"].endswith("/replayed-nonce")


def test_evidence_bound_to_another_key(broker: BrokerProcess) -> None:
    session = RawSession(broker.url)
    thief = RawSession(broker.url)
    producer = SimProducer("cohort-image")
    # evidence over the thief's key, presented with the session's key (or vice versa)
    evidence = session.evidence_for(
        producer, dict(session.runtime_data(), **{"tee-pubkey": thief.key.public_jwk})
    )
    status, body = session.attest(
        {"runtime-data": session.runtime_data(), "tee-evidence": {"primary_evidence": evidence}}
    )
    assert status == 401 and "report-data" in body["detail"]


def test_real_snp_evidence_not_bound_to_this_session(broker: BrokerProcess) -> None:
    session = RawSession(broker.url, tee="snp")
    status, body = session.attest(
        {
            "runtime-data": session.runtime_data(),
            "tee-evidence": {"primary_evidence": real_snp_evidence().to_json()},
        }
    )
    # genuine AMD evidence reaches the binding check and fails only there
    assert status == 401
    assert "report-data" in body["detail"]
    assert "signature" not in body["detail"]


def real_snp_evidence() -> Evidence:
    """The genuine AMD SEV-SNP report of tests/enclave/vectors (see its README)."""
    vectors = Path(__file__).resolve().parents[1] / "enclave" / "vectors" / "sev-snp"
    return Evidence(
        "snp-report",
        bytes.fromhex((vectors / "report.hex").read_text().strip()),
        {
            "vcek": certificates_pem((vectors / "vcek.der").read_bytes(), where="vcek"),
            "cert_chain": (vectors / "cert_chain.pem").read_text(),
        },
    )


def test_simulated_evidence_refused_unless_policy_allows(broker: BrokerProcess) -> None:
    policy = sim_policy()
    policy["allow_simulated"] = False
    setup_secret(broker, policy)
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, "cohort/key/v1", producer=SimProducer("cohort-image"))
    assert caught.value.status == 403 and "simulated" in caught.value.detail


def test_measurement_not_in_policy(broker: BrokerProcess) -> None:
    setup_secret(broker, sim_policy("cohort-image"))
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, "cohort/key/v1", producer=SimProducer("other-image"))
    assert caught.value.status == 403
    assert "measurement" in caught.value.detail and "other-image" in caught.value.detail


def test_debug_when_forbidden(broker: BrokerProcess) -> None:
    setup_secret(broker, sim_policy(allow_debug=False))
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, "cohort/key/v1", producer=SimProducer("cohort-image"))
    assert caught.value.status == 403 and "debug" in caught.value.detail


def test_no_policy_names_the_resource(broker: BrokerProcess) -> None:
    admin.put_secret(broker.url, "other/key/v1", b"x", token=broker.token)
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, "other/key/v1", producer=SimProducer("cohort-image"))
    assert caught.value.status == 403 and "deny by default" in caught.value.detail


def test_unknown_resource_is_404_after_policy(broker: BrokerProcess) -> None:
    setup_secret(broker, sim_policy())
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, "cohort/key/v2", producer=SimProducer("cohort-image"))
    assert caught.value.status == 404


def test_challenge_goes_to_its_own_task_only_and_expires(broker: BrokerProcess) -> None:
    admin.put_policy(broker.url, broker.token, "cohort", sim_policy())
    deadline = int(time.time()) + 3
    address = admin.create_challenge(broker.url, broker.token, TASK_A, deadline, policy="cohort")
    # the scheduler gets the address only, and asking again gives the same one
    assert admin.create_challenge(broker.url, broker.token, TASK_A, deadline) == address
    resource = f"pox-task/{TASK_A}/enclave-challenge"
    producer = SimProducer("cohort-image")

    key = client.fetch_resource(broker.url, resource, producer=producer, task_id=TASK_A)
    assert Account.from_key(key.decode()).address == address

    with pytest.raises(BrokerRefused) as caught:  # another task's job
        client.fetch_resource(broker.url, resource, producer=producer, task_id=TASK_B)
    assert caught.value.status == 403 and TASK_B in caught.value.detail
    with pytest.raises(BrokerRefused) as caught:  # a job that names no task
        client.fetch_resource(broker.url, resource, producer=producer)
    assert caught.value.status == 403

    time.sleep(max(0.0, deadline - time.time()) + 1.2)
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, resource, producer=producer, task_id=TASK_A)
    assert caught.value.status == 403 and "expired" in caught.value.detail
    record = json.loads((broker.state_dir / "challenges" / f"{TASK_A}.json").read_text())
    assert record["deleted"] is True and "box" not in record  # the sealed key is gone


def test_upload_signed_by_non_owner_is_refused(broker: BrokerProcess) -> None:
    owner = Account.create()
    stranger = Account.create()
    resource = f"requester/{owner.address}/api-token"
    with pytest.raises(BrokerRefused) as caught:
        admin.put_secret(broker.url, resource, b"t0ken", signer_key=stranger.key.hex())
    assert caught.value.status == 403 and "only requester" in caught.value.detail
    stored = admin.put_secret(broker.url, resource, b"t0ken", signer_key=owner.key.hex())
    assert stored["uploader"] == owner.address
    # a signature is for one resource and one value: replaying it for another value fails
    from pox_executor.sms.uploads import sign_upload

    expires = int(time.time()) + 60
    signature = sign_upload(owner.key.hex(), resource, b"t0ken", expires)
    import base64

    from broker_process import http

    status, _h, body = http(
        "PUT",
        f"{broker.url}/pox/v0/secrets/{resource}",
        json.dumps(
            {
                "value": base64.b64encode(b"other").decode(),
                "signer": owner.address,
                "signature": signature,
                "expires": expires,
                "replace": True,
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 401 and "not by the claimed signer" in json.loads(body)["detail"]


def test_rsa_tee_key_and_negotiated_sha512(broker: BrokerProcess) -> None:
    setup_secret(broker, sim_policy())
    value = client.fetch_resource(
        broker.url,
        "cohort/key/v1",
        producer=SimProducer("cohort-image"),
        key_algorithm="RSA-OAEP-256",
    )
    assert value == b"the dataset key"
    # a guest that offers only SHA-512 gets it selected, and its binding uses it
    from broker_process import http

    status, headers, body = http(
        "POST",
        f"{broker.url}/kbs/v0/auth",
        json.dumps(
            {
                "version": "0.4.0",
                "tee": "sample",
                "extra-params": {"supported-hash-algorithms": ["sha512"]},
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200
    assert json.loads(body)["extra-params"]["selected-hash-algorithm"] == "sha512"
    session = RawSession.__new__(RawSession)
    session.url = broker.url
    session.nonce = json.loads(body)["nonce"]
    session.algorithm = "sha512"
    session.cookie = headers["Set-Cookie"].split(";", 1)[0]
    from pox_executor.sms import jwe

    session.key = jwe.generate_tee_key()
    assert session.attest_with(SimProducer("cohort-image"))[0] == 200
    assert session.resource("cohort/key/v1") == (200, b"the dataset key")


@pytest.mark.parametrize("with_collateral", [False, True])
def test_native_coco_sgx_quote_is_parsed_and_checked(
    broker: BrokerProcess, with_collateral: bool
) -> None:
    """A CoCo SGX attester sends `{"quote": base64}`: genuine, but not bound to this session."""
    import base64

    vectors = Path(__file__).resolve().parents[1] / "enclave" / "vectors" / "sgx-dcap"
    native: dict[str, Any] = {
        "quote": base64.b64encode((vectors / "quote.bin").read_bytes()).decode()
    }
    if with_collateral:
        native["collateral"] = json.loads((vectors / "collateral.json").read_text())
    session = RawSession(broker.url, tee="sgx")
    status, body = session.attest(
        {"runtime-data": session.runtime_data(), "tee-evidence": {"primary_evidence": native}}
    )
    assert status == 401
    if with_collateral:
        assert "report-data" in body["detail"]  # parsed and checked, refused for the binding
    else:
        assert "collateral" in body["detail"]


def test_challenge_policy_named_by_the_scheduler_governs_its_release(broker: BrokerProcess) -> None:
    task = "0x" + "c1" * 32
    policy = sim_policy("task-image")
    policy["resources"] = ["elsewhere/x/y"]  # named by the challenge, it applies regardless
    admin.put_policy(broker.url, broker.token, "task-c1", policy)
    address = admin.create_challenge(
        broker.url, broker.token, task, int(time.time()) + 600, policy="task-c1"
    )
    resource = f"pox-task/{task}/enclave-challenge"
    with pytest.raises(BrokerRefused) as caught:
        client.fetch_resource(broker.url, resource, producer=SimProducer("x"), task_id=task)
    assert caught.value.status == 403 and "task-c1" in caught.value.detail
    key = client.fetch_resource(
        broker.url, resource, producer=SimProducer("task-image"), task_id=task
    )
    assert Account.from_key(key.decode()).address == address
