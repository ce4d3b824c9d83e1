"""Fixtures for the chain tests: a real anvil started like bloxberg and the PoX contracts on it.

Without anvil or forge these tests skip locally but fail when CI=true, so CI never passes by
skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from pox_executor.chain.deploy import PoxDeployment, deploy_pox
from pox_executor.chain.devnet import Devnet, find_anvil, start_devnet

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def require_tool(found: bool, name: str) -> None:
    """Skip locally, fail in CI, when a toolchain binary is missing."""
    if found:
        return
    message = f"{name} not installed: run `bash contracts/scripts/setup.sh`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def forge_path() -> str | None:
    local = CONTRACTS_DIR / "node_modules" / ".bin" / "forge"
    return str(local) if local.exists() else shutil.which("forge")


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
