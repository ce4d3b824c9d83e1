"""Fixtures of the dataset tests: a real anvil with the PoX contracts, and a real key broker
(`pox sms serve`) that reads dataset owners from that chain's DatasetRegistry."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_mode import missing_tool

from pox_executor.chain.accounts import Accounts
from pox_executor.chain.client import ChainClient
from pox_executor.chain.deploy import deploy_pox
from pox_executor.chain.devnet import Devnet, find_anvil, start_devnet
from pox_executor.chain.profiles import Profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sms"))

from broker_process import BrokerProcess


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    if find_anvil() is None:
        missing_tool("anvil not installed: run `bash contracts/scripts/setup.sh`")
    with start_devnet() as net:
        yield net


@pytest.fixture(scope="module")
def chain(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainClient]:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    pox = deploy_pox(w3, devnet.private_keys[0], category_time_ref_s=3600)
    profile = Profile(name="dataset-test", rpc_url=devnet.rpc_url, chain_id=devnet.chain_id)
    accounts = Accounts({"requester": devnet.private_keys[1], "other": devnet.private_keys[2]})
    mp = pytest.MonkeyPatch()
    mp.setenv("POX_DATA_DIR", str(tmp_path_factory.mktemp("pox-data")))
    yield ChainClient(profile, devnet.rpc_url, {"DatasetRegistry": pox.datasets.address}, accounts)
    mp.undo()


@pytest.fixture(scope="module")
def chain_broker(
    chain: ChainClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    state = tmp_path_factory.mktemp("broker") / "state"
    process = BrokerProcess(
        state,
        extra_args=[
            "--chain-rpc",
            chain.rpc_url,
            "--dataset-registry",
            chain.addresses["DatasetRegistry"],
        ],
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
