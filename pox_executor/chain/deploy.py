"""Deploying and calling the PoX contracts with legacy (type-0) transactions, as bloxberg needs.

Owns `send_legacy_transaction` (explicit gas price, chain id, gas estimate with headroom,
receipt status checked) and `deploy_pox` (registries, hub, batch proofs, run registry, one work
category). Contract logic stays in `contracts/`; keys are passed in, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxParams

from pox_executor.chain.artifacts import load_artifact
from pox_executor.errors import PoxError

#: bloxberg's minimum gas price is low; any explicit price keeps transactions type 0.
DEFAULT_GAS_PRICE_WEI = 1_000_000_000


class TransactionError(PoxError):
    """A transaction was refused or reverted."""


@dataclass(frozen=True)
class Receipt:
    """What callers need from a mined transaction."""

    tx_hash: str
    gas_used: int
    contract_address: str | None
    logs: list[Any]
    raw: Any


def send_legacy_transaction(
    w3: Web3,
    private_key: str,
    tx: dict[str, Any],
    *,
    gas_price_wei: int = DEFAULT_GAS_PRICE_WEI,
    gas: int | None = None,
) -> Receipt:
    """Sign `tx` as a legacy transaction from `private_key`, send it and wait for success."""
    sender = Account.from_key(private_key).address
    full: dict[str, Any] = {
        "from": sender,
        "nonce": w3.eth.get_transaction_count(sender, "pending"),
        "chainId": w3.eth.chain_id,
        "gasPrice": gas_price_wei,
        "value": 0,
        **tx,
    }
    full.pop("maxFeePerGas", None)
    full.pop("maxPriorityFeePerGas", None)
    if gas is None:
        try:
            gas = int(w3.eth.estimate_gas(cast(TxParams, full)) * 12 // 10) + 10_000
        except Exception as exc:  # web3 raises several unrelated types for reverts
            raise TransactionError(f"transaction from {sender} would revert: {exc}") from exc
    full["gas"] = gas
    full.pop("from")
    signed = Account.sign_transaction(full, private_key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        raise TransactionError(
            f"transaction {tx_hash.hex()} reverted (gas used {receipt['gasUsed']})"
        )
    return Receipt(
        tx_hash=tx_hash.hex(),
        gas_used=int(receipt["gasUsed"]),
        contract_address=receipt.get("contractAddress"),
        logs=list(receipt["logs"]),
        raw=receipt,
    )


def decode_events(event: Any, receipt: Receipt) -> list[dict[str, Any]]:
    """Arguments of every `event` (e.g. `hub.events.OrdersMatched()`) in a receipt."""
    return [dict(log["args"]) for log in event.process_receipt(receipt.raw, errors=DISCARD)]


def deploy_contract(w3: Web3, private_key: str, name: str, *args: Any) -> tuple[Any, Receipt]:
    """Deploy the exported artifact `name` with constructor `args`; returns (contract, receipt)."""
    artifact = load_artifact(name)
    abi: Any = artifact.abi
    factory = w3.eth.contract(abi=abi, bytecode=artifact.bytecode)
    data = factory.constructor(*args).build_transaction(
        {"gasPrice": DEFAULT_GAS_PRICE_WEI, "gas": 1}
    )
    receipt = send_legacy_transaction(w3, private_key, {"data": data["data"]})
    if receipt.contract_address is None:
        raise TransactionError(f"deploying {name} created no contract")
    address = Web3.to_checksum_address(receipt.contract_address)
    return w3.eth.contract(address=address, abi=abi), receipt


def transact(
    w3: Web3, private_key: str, call: Any, *, value: int = 0, gas: int | None = None
) -> Receipt:
    """Send a prepared contract function call (`contract.functions.f(...)`) as a legacy tx."""
    tx = call.build_transaction({"gasPrice": DEFAULT_GAS_PRICE_WEI, "gas": 1, "value": value})
    return send_legacy_transaction(
        w3, private_key, {"to": tx["to"], "data": tx["data"], "value": value}, gas=gas
    )


@dataclass(frozen=True)
class PoxDeployment:
    """Addresses-bound contract objects of one PoX deployment."""

    apps: Any
    datasets: Any
    workerpools: Any
    hub: Any
    batch_proofs: Any
    runs: Any
    receipts: dict[str, Receipt]


def deploy_pox(
    w3: Web3,
    private_key: str,
    *,
    category_time_ref_s: int = 3600,
) -> PoxDeployment:
    """Deploy every PoX contract and create category 0 with the given time reference."""
    receipts: dict[str, Receipt] = {}
    apps, receipts["AppRegistry"] = deploy_contract(w3, private_key, "AppRegistry")
    datasets, receipts["DatasetRegistry"] = deploy_contract(w3, private_key, "DatasetRegistry")
    pools, receipts["WorkerpoolRegistry"] = deploy_contract(w3, private_key, "WorkerpoolRegistry")
    hub, receipts["PocoHub"] = deploy_contract(
        w3, private_key, "PocoHub", apps.address, datasets.address, pools.address
    )
    proofs, receipts["BatchProofs"] = deploy_contract(w3, private_key, "BatchProofs", hub.address)
    runs, receipts["WorkflowRunRegistry"] = deploy_contract(w3, private_key, "WorkflowRunRegistry")
    receipts["createCategory"] = transact(
        w3, private_key, hub.functions.createCategory("default", "PoX jobs", category_time_ref_s)
    )
    return PoxDeployment(apps, datasets, pools, hub, proofs, runs, receipts)
