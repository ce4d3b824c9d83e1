"""PoCo compatibility: what the contracts compute on a real anvil (bloxberg settings, legacy
transactions) equals what Python computes independently with eth-account and eth-abi
(`pox_executor.chain.poco`), for fuzzed orders, ids, results and signatures."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from pox_executor.chain import poco
from pox_executor.chain.deploy import PoxDeployment, TransactionError, decode_events, transact
from pox_executor.provenance import merkle

ZERO = "0x" + "00" * 20
_unique = itertools.count(1)
_FUZZ = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

bytes32 = st.binary(min_size=32, max_size=32)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
private_keys = st.integers(min_value=1, max_value=2**255).map(
    lambda k: "0x" + k.to_bytes(32, "big").hex()
)


@pytest.fixture(scope="module")
def market(
    w3: Web3, pox: PoxDeployment, keys: dict[str, str], addresses: dict[str, str]
) -> dict[str, Any]:
    """One app, dataset and workerpool, with the requester and scheduler funded in the hub."""
    app_tx = transact(
        w3,
        keys["app_owner"],
        pox.apps.functions.createApp(
            addresses["app_owner"],
            "pox-python",
            "DOCKER",
            b"docker.io/pox/python",
            b"\x01" * 32,
            b"\xab",
        ),
    )
    dataset_tx = transact(
        w3,
        keys["dataset_owner"],
        pox.datasets.functions.createDataset(
            addresses["dataset_owner"], "reads", b"ipfs://r", b"\x02" * 32
        ),
    )
    pool_tx = transact(
        w3,
        keys["scheduler"],
        pox.workerpools.functions.createWorkerpool(addresses["scheduler"], "tee"),
    )
    for role in ("requester", "scheduler"):
        transact(w3, keys[role], pox.hub.functions.deposit(), value=10**21)
    return {
        "app": decode_events(pox.apps.events.AppCreated(), app_tx)[0]["app"],
        "dataset": decode_events(pox.datasets.events.DatasetCreated(), dataset_tx)[0]["dataset"],
        "workerpool": decode_events(pox.workerpools.events.WorkerpoolCreated(), pool_tx)[0][
            "workerpool"
        ],
    }


def test_domain_separator_matches(w3: Web3, pox: PoxDeployment) -> None:
    expected = poco.domain_separator(w3.eth.chain_id, pox.hub.address)
    assert pox.hub.functions.eip712domain_separator().call() == expected


def test_contracts_run_on_bloxberg_settings(w3: Web3, pox: PoxDeployment) -> None:
    assert w3.eth.chain_id == 8995
    block = w3.eth.get_block("latest")
    assert block["gasLimit"] == 8_000_000
    assert "baseFeePerGas" not in block  # istanbul: no EIP-1559
    for receipt in pox.receipts.values():
        assert receipt.raw["type"] == 0, "legacy transactions only"
        assert receipt.gas_used < 8_000_000


@_FUZZ
@given(deal=bytes32, idx=uint256, first=uint256, count=uint256, digest=bytes32)
def test_ids_match(
    pox: PoxDeployment, deal: bytes, idx: int, first: int, count: int, digest: bytes
) -> None:
    assert pox.hub.functions.taskIdOf(deal, idx).call() == poco.task_id(deal, idx)
    assert pox.hub.functions.batchIdOf(deal, first, count).call() == poco.batch_id(
        deal, first, count
    )
    task = poco.task_id(deal, idx)
    assert pox.batch_proofs.functions.batchLeafHash(task, digest).call() == poco.batch_leaf_hash(
        task, digest
    )


def _tee_tag(extra_bits: int) -> bytes:
    return (poco.TAG_TEE | extra_bits).to_bytes(32, "big")


orders_strategy = st.fixed_dictionaries(
    {
        "appprice": st.integers(0, 10**12),
        "datasetprice": st.integers(0, 10**12),
        "workerpoolprice": st.integers(0, 10**12),
        "slack": st.integers(0, 10**6),
        "volumes": st.tuples(*[st.integers(1, 5)] * 4),
        "app_bits": st.sampled_from([0x0, 0x2, 0x4, 0x8]),
        "request_bits": st.sampled_from([0x0, 0x100, 0x200]),
        "dataset_bits": st.sampled_from([0x0, 0x2, 0x3, 0x8]),
        "params": st.text(max_size=80),
        "salt": bytes32,
        "with_dataset": st.booleans(),
        "restrict": st.booleans(),
    }
)


def _orders(
    draw: dict[str, Any], market: dict[str, Any], requester: str, *, batched: bool = False
) -> dict[str, dict[str, Any]]:
    """Orders for one deal; `batched` puts PoX's batch bit in the request and pool tags."""
    mode_bits = poco.TAG_BATCHED if batched else 0
    salt = bytes(
        a ^ b for a, b in zip(draw["salt"], next(_unique).to_bytes(32, "big"), strict=True)
    )
    dataset = market["dataset"] if draw["with_dataset"] else ZERO
    pool_tag = _tee_tag(draw["app_bits"] | draw["request_bits"] | 0x0E | mode_bits)
    va, vd, vw, vr = draw["volumes"]
    restrict = draw["restrict"]
    return {
        "AppOrder": {
            "app": market["app"], "appprice": draw["appprice"], "volume": va,
            "tag": _tee_tag(draw["app_bits"]), "datasetrestrict": dataset if restrict else ZERO,
            "workerpoolrestrict": market["workerpool"] if restrict else ZERO,
            "requesterrestrict": requester if restrict else ZERO, "salt": salt,
        },
        "DatasetOrder": {
            "dataset": dataset, "datasetprice": draw["datasetprice"] if draw["with_dataset"] else 0,
            "volume": vd if draw["with_dataset"] else 0,
            "tag": (draw["dataset_bits"] if draw["with_dataset"] else 0).to_bytes(32, "big"),
            "apprestrict": market["app"] if restrict and draw["with_dataset"] else ZERO,
            "workerpoolrestrict": ZERO, "requesterrestrict": ZERO, "salt": salt,
        },
        "WorkerpoolOrder": {
            "workerpool": market["workerpool"], "workerpoolprice": draw["workerpoolprice"],
            "volume": vw, "tag": pool_tag, "category": 0, "trust": 1,
            "apprestrict": market["app"] if restrict else ZERO, "datasetrestrict": ZERO,
            "requesterrestrict": requester if restrict else ZERO, "salt": salt,
        },
        "RequestOrder": {
            "app": market["app"], "appmaxprice": draw["appprice"] + draw["slack"],
            "dataset": dataset, "datasetmaxprice": draw["datasetprice"] + draw["slack"],
            "workerpool": market["workerpool"] if restrict else ZERO,
            "workerpoolmaxprice": draw["workerpoolprice"] + draw["slack"], "requester": requester,
            "volume": vr, "tag": _tee_tag(draw["request_bits"] | mode_bits), "category": 0,
            "trust": 1,
            "beneficiary": requester, "callback": ZERO, "params": draw["params"], "salt": salt,
        },
    }  # fmt: skip


_SIGNERS = {
    "AppOrder": "app_owner",
    "DatasetOrder": "dataset_owner",
    "WorkerpoolOrder": "scheduler",
    "RequestOrder": "requester",
}


def _match(
    w3: Web3, pox: PoxDeployment, keys: dict[str, str], orders: dict[str, dict[str, Any]]
) -> tuple[bytes, dict[str, Any]]:
    """Sign the orders in Python, match them on chain, check ids and hashes; (dealid, event)."""
    chain_id, hub = w3.eth.chain_id, pox.hub.address
    signed = {}
    for order_type, order in orders.items():
        sign = b""
        if order_type != "DatasetOrder" or order["dataset"] != ZERO:
            sign = poco.sign_order(order_type, order, chain_id, hub, keys[_SIGNERS[order_type]])
        signed[order_type] = {**order, "sign": sign}
    request_hash = poco.order_hash("RequestOrder", orders["RequestOrder"], chain_id, hub)
    consumed_before = pox.hub.functions.viewConsumed(request_hash).call()
    receipt = transact(
        w3,
        keys["requester"],
        pox.hub.functions.matchOrders(
            signed["AppOrder"],
            signed["DatasetOrder"],
            signed["WorkerpoolOrder"],
            signed["RequestOrder"],
        ),
    )
    assert receipt.raw["type"] == 0
    event = decode_events(pox.hub.events.OrdersMatched(), receipt)[0]
    expected_deal = poco.deal_id(request_hash, consumed_before)
    assert event["dealid"] == expected_deal
    assert event["requestHash"] == request_hash
    assert event["appHash"] == poco.order_hash("AppOrder", orders["AppOrder"], chain_id, hub)
    assert event["workerpoolHash"] == poco.order_hash(
        "WorkerpoolOrder", orders["WorkerpoolOrder"], chain_id, hub
    )
    if orders["DatasetOrder"]["dataset"] != ZERO:
        assert event["datasetHash"] == poco.order_hash(
            "DatasetOrder", orders["DatasetOrder"], chain_id, hub
        )
    # the struct hashes eth-account signs are the ones the hub recovered signatures against
    assert pox.hub.functions.viewConsumed(request_hash).call() == consumed_before + event["volume"]
    return expected_deal, dict(event)


@_FUZZ
@given(draw=orders_strategy, digest=bytes32, enclave_key=private_keys, pick=st.integers(0, 4))
def test_per_task_path_matches_python(
    w3: Web3,
    pox: PoxDeployment,
    keys: dict[str, str],
    addresses: dict[str, str],
    market: dict[str, Any],
    draw: dict[str, Any],
    digest: bytes,
    enclave_key: str,
    pick: int,
) -> None:
    orders = _orders(draw, market, addresses["requester"])
    deal, event = _match(w3, pox, keys, orders)
    info = pox.hub.functions.viewDeal(deal).call()
    assert info[15] == addresses["requester"]  # sponsor
    idx = info[11] + pick % event["volume"]
    receipt = transact(w3, keys["worker"], pox.hub.functions.initialize(deal, idx))
    task = decode_events(pox.hub.events.TaskInitialize(), receipt)[0]["taskid"]
    assert task == poco.task_id(deal, idx)

    worker = addresses["worker"]
    enclave = Account.from_key(enclave_key).address
    authorization = poco.sign_authorization(keys["scheduler"], worker, task, enclave)
    result = poco.sign_result(enclave_key, worker, task, digest)
    finalize = pox.hub.functions.contributeAndFinalize(
        task, digest, b"ipfs://r", b"", enclave, result, authorization
    )
    other_digest = bytes(a ^ 0xFF for a in digest)
    tampered = pox.hub.functions.contributeAndFinalize(
        task, other_digest, b"", b"", enclave, result, authorization
    )
    with pytest.raises(TransactionError):
        transact(w3, keys["worker"], tampered)  # the enclave did not sign that digest
    receipt = transact(w3, keys["worker"], finalize)
    contributed = decode_events(pox.hub.events.TaskContribute(), receipt)[0]
    assert contributed["hash"] == poco.result_hash(task, digest)
    assert pox.hub.functions.viewTask(task).call()[7] == poco.result_hash(
        task, digest
    )  # consensusValue


@_FUZZ
@given(draw=orders_strategy, seed=bytes32, enclave_key=private_keys)
def test_batched_path_matches_python(
    w3: Web3,
    pox: PoxDeployment,
    keys: dict[str, str],
    addresses: dict[str, str],
    market: dict[str, Any],
    draw: dict[str, Any],
    seed: bytes,
    enclave_key: str,
) -> None:
    orders = _orders(draw, market, addresses["requester"], batched=True)
    deal, event = _match(w3, pox, keys, orders)
    first = pox.hub.functions.viewDeal(deal).call()[11]
    with pytest.raises(TransactionError):  # the mode was fixed at match: no per-task switch
        transact(w3, keys["worker"], pox.hub.functions.initialize(deal, first))
    count = event["volume"]
    digests = [Web3.keccak(seed + i.to_bytes(4, "big")) for i in range(count)]
    root = poco.batch_results_root(deal, first, digests)
    batch = poco.batch_id(deal, first, count)
    worker = addresses["worker"]
    enclave = Account.from_key(enclave_key).address
    authorization = poco.sign_authorization(keys["scheduler"], worker, batch, enclave)
    result = poco.sign_result(enclave_key, worker, batch, root)
    receipt = transact(
        w3,
        keys["worker"],
        pox.hub.functions.contributeAndFinalizeBatch(
            deal, first, count, root, b"", enclave, result, authorization
        ),
    )
    finalized = decode_events(pox.hub.events.BatchFinalize(), receipt)[0]
    assert finalized["batchid"] == batch
    assert finalized["resultsRoot"] == root
    leaves = [poco.batch_leaf_hash(poco.task_id(deal, first + i), d) for i, d in enumerate(digests)]
    for i, digest in enumerate(digests):
        proof = merkle.inclusion_proof(leaves, i)
        assert pox.batch_proofs.functions.verifyBatchedResult(deal, first + i, digest, proof).call()
        forged = bytes(b ^ 1 for b in digest)
        assert not pox.batch_proofs.functions.verifyBatchedResult(
            deal, first + i, forged, proof
        ).call()
