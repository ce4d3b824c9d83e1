"""The broker's library parts in-process: upload authorisation, challenge lifecycle, sealing,
resource-policy parsing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from eth_account import Account

from pox_executor.sms.challenges import (
    ChallengeError,
    challenge_key,
    create_challenge,
    sweep_expired,
)
from pox_executor.sms.policy import PolicyError, parse_resource_policy
from pox_executor.sms.store import BrokerStore, StoreError
from pox_executor.sms.uploads import UploadRefused, authorise_upload, sign_upload

TASK = "0x" + "cd" * 32


def test_upload_signature_rules() -> None:
    owner = Account.create()
    resource = f"requester/{owner.address}/token"
    now = int(time.time())

    def check(
        value: bytes = b"v", *, key: str | None = None, expires: object = now + 60, **kw: object
    ) -> str:
        signature = sign_upload(key or owner.key.hex(), resource, b"v", now + 60)
        args = {"signer": owner.address, "signature": signature, "expires_s": expires}
        args.update(kw)
        return authorise_upload(resource, value, owners=None, **args)  # type: ignore[arg-type]

    assert check() == owner.address
    with pytest.raises(UploadRefused, match="expired"):
        check(expires=now - 1)
    with pytest.raises(UploadRefused, match="too long"):
        check(expires=now + 7200)
    with pytest.raises(UploadRefused, match="not by the claimed signer"):
        check(b"other value")  # the signature covers the value's SHA-256
    with pytest.raises(UploadRefused, match="not a valid EIP-191"):
        check(signature="0x1234")
    with pytest.raises(UploadRefused, match="expected a Unix time"):
        check(expires="soon")
    stranger = Account.create()
    with pytest.raises(UploadRefused, match="not by the claimed signer"):
        check(key=stranger.key.hex())
    with pytest.raises(UploadRefused, match="admin token"):
        authorise_upload(
            "team/x/y",
            b"v",
            signer=owner.address,
            signature=sign_upload(owner.key.hex(), "team/x/y", b"v", now + 60),
            expires_s=now + 60,
            owners=None,
        )
    with pytest.raises(UploadRefused, match="--chain-rpc"):
        dataset = "dataset/0x" + "11" * 20 + "/key"
        authorise_upload(
            dataset,
            b"v",
            signer=owner.address,
            signature=sign_upload(owner.key.hex(), dataset, b"v", now + 60),
            expires_s=now + 60,
            owners=None,
        )


def test_challenge_lifecycle(tmp_path: Path) -> None:
    store = BrokerStore(tmp_path / "state")
    now = time.time()
    record = create_challenge(store, TASK, int(now) + 100, policy_id=None, now_s=now)
    assert (
        create_challenge(store, TASK.upper().replace("0X", "0x"), int(now) + 100, policy_id=None)[
            "address"
        ]
        == record["address"]
    )
    key = challenge_key(store, TASK, now_s=now)
    assert Account.from_key(key).address == record["address"]
    assert "box" in (store.get_challenge(TASK) or {})
    assert sweep_expired(store, now_s=now + 50) == []
    assert sweep_expired(store, now_s=now + 101) == [TASK]
    assert "box" not in (store.get_challenge(TASK) or {})
    with pytest.raises(ChallengeError, match="expired") as caught:
        challenge_key(store, TASK)
    assert caught.value.status == 403
    with pytest.raises(ChallengeError, match="one challenge only"):
        create_challenge(store, TASK, int(now) + 1000, policy_id=None)
    with pytest.raises(ChallengeError, match="future"):
        create_challenge(store, "0x" + "ee" * 32, int(now) - 1, policy_id=None)
    with pytest.raises(ChallengeError, match="64 hex"):
        create_challenge(store, "task-1", int(now) + 10, policy_id=None)
    with pytest.raises(ChallengeError, match="no enclave challenge") as caught:
        challenge_key(store, "0x" + "ff" * 32)
    assert caught.value.status == 404


def test_sealed_values_are_bound_to_their_name(tmp_path: Path) -> None:
    store = BrokerStore(tmp_path / "state")
    store.put_secret("a/b/c", b"one")
    box = store.seal(b"one", "secret:a/b/c")
    with pytest.raises(StoreError, match="does not open"):
        store.unseal(box, "secret:a/b/d")
    # another master key (another broker's state) cannot open it either
    other = BrokerStore(tmp_path / "other")
    with pytest.raises(StoreError, match="does not open"):
        other.unseal(box, "secret:a/b/c")
    assert BrokerStore(tmp_path / "state").get_secret("a/b/c") == b"one"
    os.chmod(tmp_path / "state" / "master.key", 0o640)
    with pytest.raises(StoreError, match="readable by others"):
        BrokerStore(tmp_path / "state")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"resources": []}, "resources"),
        ({"resources": ["a/b"]}, "resources"),
        ({"resources": ["a/b/c"], "allow_simulated": "yes"}, "allow_simulated"),
        ({"resources": ["a/b/c"], "version": 2}, "version"),
        ({"resources": ["a/b/c"], "extra": 1}, "unknown field 'extra'"),
        ({"resources": ["a/b/c"], "attestation": {"min_tcb_status": "Good"}}, "min_tcb_status"),
    ],
)
def test_policy_errors_name_the_field(document: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_resource_policy("p", document)


def test_policy_id_and_patterns() -> None:
    with pytest.raises(PolicyError, match="policy id"):
        parse_resource_policy("../x", {"resources": ["a/b/c"]})
    policy = parse_resource_policy("p", {"resources": ["dataset/0x*/key"]})
    assert policy.covers("dataset/0xabc/key") and not policy.covers("dataset/0xabc/other")
