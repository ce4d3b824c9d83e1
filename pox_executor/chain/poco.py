"""PoCo's off-chain messages in Python: EIP-712 orders, deal, task and batch ids, and the TEE
authorization and enclave signatures, computed with eth-account and eth-abi.

Owns the Python side of PoCo compatibility (iExec PoCo 5.x/6.x definitions): domain
("iExecODB", "5.0.0", chain id, hub), the four order types with PoCo's field order,
`dealid = keccak256(requestHash, consumed)`, `taskid = keccak256(dealid, idx)`,
`resultHash = keccak256(taskid, digest)`, `resultSeal = keccak256(worker, taskid, digest)`,
authorization = EIP-191 over keccak256(worker, taskid, enclaveChallenge), enclave signature =
EIP-191 over keccak256(resultHash, resultSeal). PoX's batched path reuses the last two with a
batch id `keccak256(dealid, first, count)` and an RFC 9162 root in place of task id and digest;
a deal is batched when its request and workerpool orders carry `TAG_BATCHED` (bit 128).
Orders are plain dicts keyed by PoCo's field names; nothing here talks to a chain.
"""

from __future__ import annotations

from typing import Any

from eth_abi.packed import encode_packed
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils.crypto import keccak

from pox_executor.provenance import merkle

DOMAIN_NAME = "iExecODB"
DOMAIN_VERSION = "5.0.0"
TAG_TEE = 0x1
TAG_BATCHED = 1 << 128  # PoX's tag bit: the deal is finalized in batches (fixed at match)

ORDER_TYPES: dict[str, list[dict[str, str]]] = {
    "AppOrder": [
        {"name": "app", "type": "address"},
        {"name": "appprice", "type": "uint256"},
        {"name": "volume", "type": "uint256"},
        {"name": "tag", "type": "bytes32"},
        {"name": "datasetrestrict", "type": "address"},
        {"name": "workerpoolrestrict", "type": "address"},
        {"name": "requesterrestrict", "type": "address"},
        {"name": "salt", "type": "bytes32"},
    ],
    "DatasetOrder": [
        {"name": "dataset", "type": "address"},
        {"name": "datasetprice", "type": "uint256"},
        {"name": "volume", "type": "uint256"},
        {"name": "tag", "type": "bytes32"},
        {"name": "apprestrict", "type": "address"},
        {"name": "workerpoolrestrict", "type": "address"},
        {"name": "requesterrestrict", "type": "address"},
        {"name": "salt", "type": "bytes32"},
    ],
    "WorkerpoolOrder": [
        {"name": "workerpool", "type": "address"},
        {"name": "workerpoolprice", "type": "uint256"},
        {"name": "volume", "type": "uint256"},
        {"name": "tag", "type": "bytes32"},
        {"name": "category", "type": "uint256"},
        {"name": "trust", "type": "uint256"},
        {"name": "apprestrict", "type": "address"},
        {"name": "datasetrestrict", "type": "address"},
        {"name": "requesterrestrict", "type": "address"},
        {"name": "salt", "type": "bytes32"},
    ],
    "RequestOrder": [
        {"name": "app", "type": "address"},
        {"name": "appmaxprice", "type": "uint256"},
        {"name": "dataset", "type": "address"},
        {"name": "datasetmaxprice", "type": "uint256"},
        {"name": "workerpool", "type": "address"},
        {"name": "workerpoolmaxprice", "type": "uint256"},
        {"name": "requester", "type": "address"},
        {"name": "volume", "type": "uint256"},
        {"name": "tag", "type": "bytes32"},
        {"name": "category", "type": "uint256"},
        {"name": "trust", "type": "uint256"},
        {"name": "beneficiary", "type": "address"},
        {"name": "callback", "type": "address"},
        {"name": "params", "type": "string"},
        {"name": "salt", "type": "bytes32"},
    ],
}

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def domain(chain_id: int, hub: str) -> dict[str, Any]:
    """PoCo's EIP-712 domain for a hub."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": hub,
    }


def typed_data(order_type: str, order: dict[str, Any], chain_id: int, hub: str) -> dict[str, Any]:
    """The EIP-712 `full_message` of an order (extra keys such as `sign` are left out)."""
    fields = ORDER_TYPES[order_type]
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, order_type: fields},
        "primaryType": order_type,
        "domain": domain(chain_id, hub),
        "message": {f["name"]: order[f["name"]] for f in fields},
    }


def domain_separator(chain_id: int, hub: str) -> bytes:
    """EIP-712 hashStruct of the domain."""
    return bytes(
        encode_typed_data(full_message=typed_data("AppOrder", _ZERO_APP, chain_id, hub)).header
    )


def struct_hash(order_type: str, order: dict[str, Any], chain_id: int, hub: str) -> bytes:
    """EIP-712 hashStruct of an order."""
    return bytes(encode_typed_data(full_message=typed_data(order_type, order, chain_id, hub)).body)


def order_hash(order_type: str, order: dict[str, Any], chain_id: int, hub: str) -> bytes:
    """The order's EIP-712 digest, which PoCo uses as the order's id (consumed, presigned)."""
    message = encode_typed_data(full_message=typed_data(order_type, order, chain_id, hub))
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_order(order_type: str, order: dict[str, Any], chain_id: int, hub: str, key: str) -> bytes:
    """65-byte r || s || v EIP-712 signature of an order by `key`."""
    signed = Account.sign_typed_data(key, full_message=typed_data(order_type, order, chain_id, hub))
    return bytes(signed.signature)


def deal_id(request_hash: bytes, consumed_before: int) -> bytes:
    """PoCo's deal id: keccak256(abi.encodePacked(requestHash, consumed[requestHash]))."""
    return keccak(encode_packed(["bytes32", "uint256"], [request_hash, consumed_before]))


def task_id(deal: bytes, index: int) -> bytes:
    """PoCo's task id: keccak256(abi.encodePacked(dealid, idx))."""
    return keccak(encode_packed(["bytes32", "uint256"], [deal, index]))


def batch_id(deal: bytes, first: int, count: int) -> bytes:
    """PoX batch id: keccak256(abi.encodePacked(dealid, first, count))."""
    return keccak(encode_packed(["bytes32", "uint256", "uint256"], [deal, first, count]))


def result_hash(subject: bytes, digest: bytes) -> bytes:
    """PoCo's resultHash: keccak256(abi.encodePacked(taskid, resultDigest))."""
    return keccak(encode_packed(["bytes32", "bytes32"], [subject, digest]))


def result_seal(worker: str, subject: bytes, digest: bytes) -> bytes:
    """PoCo's resultSeal: keccak256(abi.encodePacked(worker, taskid, resultDigest))."""
    return keccak(encode_packed(["address", "bytes32", "bytes32"], [worker, subject, digest]))


def authorization_message(worker: str, subject: bytes, enclave_challenge: str) -> bytes:
    """The 32 bytes the scheduler (or TEE broker) signs: keccak256(worker, taskid, enclave)."""
    return keccak(
        encode_packed(["address", "bytes32", "address"], [worker, subject, enclave_challenge])
    )


def enclave_message(worker: str, subject: bytes, digest: bytes) -> bytes:
    """The 32 bytes the enclave challenge key signs: keccak256(resultHash, resultSeal)."""
    return keccak(
        encode_packed(
            ["bytes32", "bytes32"],
            [result_hash(subject, digest), result_seal(worker, subject, digest)],
        )
    )


def sign_eth_message(key: str, message: bytes) -> bytes:
    """EIP-191 ("\\x19Ethereum Signed Message:\\n32") signature of a 32-byte message."""
    return bytes(Account.sign_message(encode_defunct(primitive=message), key).signature)


def sign_authorization(
    scheduler_key: str, worker: str, subject: bytes, enclave_challenge: str
) -> bytes:
    """Scheduler's (or TEE broker's) authorization of `worker` for a task or batch."""
    return sign_eth_message(
        scheduler_key, authorization_message(worker, subject, enclave_challenge)
    )


def sign_result(enclave_key: str, worker: str, subject: bytes, digest: bytes) -> bytes:
    """Enclave challenge's signature of a task result (or a batch's results root)."""
    return sign_eth_message(enclave_key, enclave_message(worker, subject, digest))


def batch_leaf_hash(task: bytes, digest: bytes) -> bytes:
    """RFC 9162 leaf of one task's result in a batch: SHA-256(0x00 || taskid || digest)."""
    return merkle.leaf_hash(task + digest)


def batch_results_root(deal: bytes, first: int, digests: list[bytes]) -> bytes:
    """RFC 9162 root over the batch's (task id, digest) leaves in index order."""
    leaves = [batch_leaf_hash(task_id(deal, first + i), d) for i, d in enumerate(digests)]
    return merkle.root(leaves)


_ZERO_APP: dict[str, Any] = {
    "app": "0x" + "00" * 20,
    "appprice": 0,
    "volume": 0,
    "tag": b"\x00" * 32,
    "datasetrestrict": "0x" + "00" * 20,
    "workerpoolrestrict": "0x" + "00" * 20,
    "requesterrestrict": "0x" + "00" * 20,
    "salt": b"\x00" * 32,
}
