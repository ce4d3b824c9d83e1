"""DatasetRegistry calls for a dataset manifest: register it on chain, read it back.

A dataset is registered with its name, its multiaddr (`/ipfs/<CID>`, as iExec's datasets) and
its checksum (the ciphertext's SHA-256, as bytes32). The address is derived as the contract
does (`keccak256(0xff, registry, owner, keccak256(abi.encode(name, multiaddr, checksum)))`),
so registering the same manifest twice is a no-op that finds the existing entry.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from pox_executor.chain.client import ChainClient
from pox_executor.datasets.manifest import DatasetManifest, read_manifest, write_manifest
from pox_executor.errors import PoxError, UsageError

REGISTRY = "DatasetRegistry"


def multiaddr_of(manifest: DatasetManifest) -> bytes:
    if not manifest.cid or not manifest.locations:
        raise UsageError(
            f"dataset {manifest.name!r} has not been pushed yet",
            hint="run `pox dataset push MANIFEST` first: the registry records its CID",
        )
    return f"/ipfs/{manifest.cid['cid']}".encode()


def dataset_address(registry: str, owner: str, name: str, multiaddr: bytes, checksum: bytes) -> str:
    salt = keccak(abi_encode(["string", "bytes", "bytes32"], [name, multiaddr, checksum]))
    packed = b"\xff" + bytes.fromhex(registry[2:]) + bytes.fromhex(owner[2:]) + salt
    return str(to_checksum_address(keccak(packed)[12:]))


def register_dataset(
    manifest_path: str | Path,
    client: ChainClient,
    *,
    role: str = "requester",
    timeout_s: float = 120,
) -> DatasetManifest:
    """Register the dataset from `role`'s account (its owner); idempotent."""
    where = Path(manifest_path)
    manifest = read_manifest(where)
    multiaddr = multiaddr_of(manifest)
    checksum = bytes.fromhex(manifest.checksum[2:])
    registry = client.contract(REGISTRY)
    owner = client.accounts.address(role)
    address = dataset_address(registry.address, owner, manifest.name, multiaddr, checksum)
    tx_hash: str | None = None
    if not registry.functions.isRegistered(address).call():
        call = registry.functions.createDataset(owner, manifest.name, multiaddr, checksum)
        sent = client.send(role, call, deadline=time.monotonic() + timeout_s)
        tx_hash = sent.tx_hash
    info = read_dataset(client, address)
    if info["checksum"] != manifest.checksum or info["multiaddr"] != multiaddr.decode():
        raise PoxError(f"dataset {address} on chain does not match {where}")
    manifest.dataset = {
        "address": address,
        "registry": str(registry.address),
        "chain_id": client.profile.chain_id,
        "owner": owner,
        **({"tx": tx_hash} if tx_hash else {}),
    }
    write_manifest(where, manifest)
    return manifest


def read_dataset(client: ChainClient, address: str) -> dict[str, Any]:
    """What the registry says about `address`: name, multiaddr, checksum, owner."""
    registry = client.contract(REGISTRY)
    try:
        name, multiaddr, checksum = registry.functions.viewDataset(
            to_checksum_address(address)
        ).call()
        owner = registry.functions.ownerOfEntry(to_checksum_address(address)).call()
    except Exception as exc:  # web3 raises several types for a revert
        raise PoxError(f"dataset {address} is not registered ({exc})") from None
    return {
        "name": str(name),
        "multiaddr": bytes(multiaddr).decode("utf-8", "replace"),
        "checksum": "0x" + bytes(checksum).hex(),
        "owner": str(owner),
    }
