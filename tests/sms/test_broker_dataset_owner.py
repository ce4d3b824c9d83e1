"""Dataset secret uploads authorised by the dataset's on-chain owner (DatasetRegistry on anvil).

A real anvil with the PoX contracts; the broker reads the owner at upload time. The owner's
EIP-191 signature is accepted; a stranger's, or one for an unregistered dataset, is refused 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from ci_mode import missing_tool
from eth_account import Account
from web3 import Web3

from pox_executor.chain.deploy import decode_events, deploy_pox, transact
from pox_executor.chain.devnet import Devnet, find_anvil, start_devnet
from pox_executor.enclave.producers import SimProducer
from pox_executor.sms import admin, client
from pox_executor.sms.client import BrokerRefused

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    if find_anvil() is None:
        missing_tool("anvil not installed: run `bash contracts/scripts/setup.sh`")
    with start_devnet() as net:
        yield net


def test_only_the_dataset_owner_uploads_its_key(devnet: Devnet, tmp_path: Path) -> None:
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url))
    deployer, owner_key, stranger_key = devnet.private_keys[:3]
    pox = deploy_pox(w3, deployer)
    owner = Account.from_key(owner_key).address
    receipt = transact(
        w3,
        owner_key,
        pox.datasets.functions.createDataset(owner, "cohort", b"ipfs://cid", b"\x07" * 32),
    )
    dataset = decode_events(pox.datasets.events.DatasetCreated(), receipt)[0]["dataset"]
    broker = BrokerProcess(
        tmp_path / "state",
        extra_args=["--chain-rpc", devnet.rpc_url, "--dataset-registry", pox.datasets.address],
    )
    broker.start()
    try:
        resource = f"dataset/{dataset}/key"
        with pytest.raises(BrokerRefused) as caught:
            admin.put_secret(broker.url, resource, b"k" * 32, signer_key=stranger_key)
        assert caught.value.status == 403 and "owned by" in caught.value.detail
        unregistered = "0x" + "12" * 20
        with pytest.raises(BrokerRefused) as caught:
            admin.put_secret(
                broker.url, f"dataset/{unregistered}/key", b"k" * 32, signer_key=owner_key
            )
        assert caught.value.status == 403 and "not registered" in caught.value.detail
        stored = admin.put_secret(broker.url, resource, b"k" * 32, signer_key=owner_key)
        assert stored["uploader"] == owner
        admin.put_policy(
            broker.url,
            broker.token,
            "cohort",
            {
                "resources": [f"dataset/{dataset}/*"],
                "allow_simulated": True,
                "attestation": {"allow_debug": True},
            },
        )
        assert client.fetch_resource(broker.url, resource, producer=SimProducer("i")) == b"k" * 32
    finally:
        broker.stop()
