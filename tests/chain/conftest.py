"""Fixtures for the chain tests: a real anvil started like bloxberg and the PoX contracts on it.

Without anvil or forge these tests skip locally but fail when CI=true, so CI never passes by
skipping them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chain_tools import require_tool
from eth_account import Account
from web3 import Web3

from pox_executor.chain.deploy import PoxDeployment, deploy_pox
from pox_executor.chain.devnet import Devnet, find_anvil, start_devnet


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    require_tool(find_anvil() is not None, "anvil")
    with start_devnet() as net:
        yield net


@pytest.fixture(scope="session")
def w3(devnet: Devnet) -> Web3:
    return Web3(Web3.HTTPProvider(devnet.rpc_url))


@pytest.fixture(scope="session")
def keys(devnet: Devnet) -> dict[str, str]:
    """Development keys by role."""
    roles = [
        "deployer",
        "app_owner",
        "dataset_owner",
        "scheduler",
        "requester",
        "worker",
        "enclave",
    ]
    return dict(zip(roles, devnet.private_keys, strict=False))


@pytest.fixture(scope="session")
def pox(w3: Web3, keys: dict[str, str]) -> PoxDeployment:
    return deploy_pox(w3, keys["deployer"], category_time_ref_s=3600)


@pytest.fixture(scope="session")
def addresses(keys: dict[str, str]) -> dict[str, str]:
    """Addresses of the development keys, by role."""
    return {role: str(Account.from_key(key).address) for role, key in keys.items()}
