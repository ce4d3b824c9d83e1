"""Off-chain ids and orders for settlement: everything the journal names before any transaction.

Owns the registry's run id (SHA-256 of the PoX run id), the CREATE2-style addresses the app and
workerpool registries give (so an app is known by its checksum before it is registered), the
app registration arguments, and PoX's four PoCo orders for one deal (a batched deal carries
`poco.TAG_BATCHED` in its request and workerpool orders, which fixes its mode at match). Pure
functions; PoCo's hashes and signatures themselves live in `poco`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3

from pox_executor.chain import poco

ZERO = "0x" + "00" * 20
APP_TYPE = "DOCKER"
POOL_DESCRIPTION = "pox workerpool"


def run_id_bytes(run_id: str) -> bytes:
    """The registry's run id: SHA-256 of the PoX run id (UTF-8)."""
    return hashlib.sha256(run_id.encode("utf-8")).digest()


def _create2(registry: str, owner: str, salt: bytes) -> str:
    raw = keccak(
        b"\xff"
        + bytes.fromhex(registry[2:])
        + bytes.fromhex(Web3.to_checksum_address(owner)[2:])
        + salt
    )
    return str(Web3.to_checksum_address(raw[12:]))


def _mrenclave(image_digest: str) -> bytes:
    text = image_digest.removeprefix("sha256:")
    try:
        value = bytes.fromhex(text)
        if len(value) == 32:
            return value
    except ValueError:
        pass
    return hashlib.sha256(image_digest.encode()).digest()


def app_args(owner: str, rule: str, checksum: bytes, image_digest: str) -> tuple[Any, ...]:
    """`AppRegistry.createApp` arguments for a rule's code identity."""
    multiaddr = b"pox-app:sha256:" + checksum.hex().encode()
    return (owner, f"pox/{rule}", APP_TYPE, multiaddr, checksum, _mrenclave(image_digest))


def app_address(registry: str, args: tuple[Any, ...]) -> str:
    salt = keccak(abi_encode(["string", "string", "bytes", "bytes32", "bytes"], list(args[1:])))
    return _create2(registry, args[0], salt)


def pool_address(registry: str, owner: str) -> str:
    return _create2(registry, owner, keccak(POOL_DESCRIPTION.encode()))


def orders(
    *, app: str, pool: str, requester: str, volume: int, salt: bytes, params: str, batched: bool
) -> dict[str, dict[str, Any]]:
    """PoX's four PoCo orders for one deal (free, TEE, category 0, trust 1)."""
    tee = poco.TAG_TEE.to_bytes(32, "big")
    mode = (poco.TAG_TEE | (poco.TAG_BATCHED if batched else 0)).to_bytes(32, "big")
    common = {"salt": salt, "volume": volume, "requesterrestrict": ZERO}
    return {
        "AppOrder": {
            **common,
            "tag": tee,
            "app": app,
            "appprice": 0,
            "datasetrestrict": ZERO,
            "workerpoolrestrict": ZERO,
        },
        "DatasetOrder": {
            "dataset": ZERO,
            "datasetprice": 0,
            "volume": 0,
            "tag": b"\x00" * 32,
            "apprestrict": ZERO,
            "workerpoolrestrict": ZERO,
            "requesterrestrict": ZERO,
            "salt": b"\x00" * 32,
        },
        "WorkerpoolOrder": {
            **common,
            "tag": mode,
            "workerpool": pool,
            "workerpoolprice": 0,
            "category": 0,
            "trust": 1,
            "apprestrict": ZERO,
            "datasetrestrict": ZERO,
        },
        "RequestOrder": {
            "salt": salt,
            "volume": volume,
            "tag": mode,
            "app": app,
            "appmaxprice": 0,
            "dataset": ZERO,
            "datasetmaxprice": 0,
            "workerpool": pool,
            "workerpoolmaxprice": 0,
            "requester": requester,
            "category": 0,
            "trust": 1,
            "beneficiary": requester,
            "callback": ZERO,
            "params": params,
        },
    }
