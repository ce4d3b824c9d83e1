"""A connection to a chain profile: web3, contracts, and transactions that survive concurrency.

Owns `connect(profile)` (starting the local devnet and deploying once when the profile is
`local`) and `ChainClient.send`: legacy (type-0) transactions with the profile's explicit gas
price; the nonce is taken and the transaction sent while holding a per-(chain, account) lock,
a thread lock plus an `flock` file under the data directory, so concurrent jobs and concurrent
workflows on one machine never reuse a nonce; transient failures (dropped connections,
timeouts, nonce races) are retried with exponential backoff until a deadline.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from eth_account import Account
from web3 import Web3
from web3.types import RPCEndpoint, TxParams

from pox_executor.chain.accounts import Accounts, load_accounts
from pox_executor.chain.artifacts import load_artifact
from pox_executor.chain.profiles import Profile, data_dir
from pox_executor.errors import PoxError

T = TypeVar("T")


class ChainUnavailable(PoxError):
    """The node did not answer, or kept failing, before the deadline: retry later."""


class ChainReverted(PoxError):
    """A transaction reverted or would revert: retrying will not help."""


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()

_TRANSIENT_WORDS = (
    "nonce too low",
    "already known",
    "replacement transaction underpriced",
    "connection",
    "timed out",
    "timeout",
    "temporarily",
    "502",
    "503",
)


def _thread_lock(name: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(name, threading.Lock())


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return True
    name = type(exc).__name__
    if name in ("ConnectionError", "ReadTimeout", "ConnectTimeout", "TimeExhausted"):
        return True
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def retry(fn: Callable[[], T], *, deadline: float, what: str, first_delay_s: float = 0.25) -> T:
    """Call `fn` until it succeeds, retrying transient failures with backoff until `deadline`."""
    delay = first_delay_s
    while True:
        try:
            return fn()
        except ChainReverted:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise ChainUnavailable(f"{what}: chain unavailable ({exc})") from exc
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


@dataclass(frozen=True)
class SentTx:
    tx_hash: str
    block_number: int
    gas_used: int
    logs: list[Any]
    raw: Any


class ChainClient:
    """web3 and the PoX contracts on one profile, with the run's accounts."""

    def __init__(
        self, profile: Profile, rpc_url: str, addresses: dict[str, str], accounts: Accounts
    ) -> None:
        self.profile = profile
        self.rpc_url = rpc_url
        self.addresses = addresses
        self.accounts = accounts
        # Cache only eth_chainId: web3's validation would otherwise ask for it before every call.
        provider = Web3.HTTPProvider(
            rpc_url,
            request_kwargs={"timeout": 10},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        self.w3 = Web3(provider)
        self._contracts: dict[str, Any] = {}

    def contract(self, name: str) -> Any:
        if name not in self._contracts:
            abi: Any = load_artifact(name).abi
            self._contracts[name] = self.w3.eth.contract(
                address=Web3.to_checksum_address(self.addresses[name]), abi=abi
            )
        return self._contracts[name]

    @property
    def hub(self) -> Any:
        return self.contract("PocoHub")

    @property
    def runs(self) -> Any:
        return self.contract("WorkflowRunRegistry")

    def send(self, role: str, call: Any, *, deadline: float, gas: int | None = None) -> SentTx:
        """Send `contract.functions.f(...)` from `role` as a legacy tx and wait for its receipt."""
        key = self.accounts.key(role)
        sender = str(Account.from_key(key).address)
        chain_id = self.profile.chain_id
        tx_hash = retry(
            lambda: self._sign_and_send(key, sender, chain_id, call, gas),
            deadline=deadline,
            what=f"sending from {sender}",
        )
        receipt = retry(
            lambda: self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=max(1.0, min(60.0, deadline - time.monotonic())), poll_latency=0.05
            ),
            deadline=deadline,
            what=f"waiting for {tx_hash.hex()}",
        )
        if receipt["status"] != 1:
            raise ChainReverted(f"transaction 0x{tx_hash.hex().removeprefix('0x')} reverted")
        return SentTx(
            tx_hash="0x" + tx_hash.hex().removeprefix("0x"),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            logs=list(receipt["logs"]),
            raw=receipt,
        )

    def _sign_and_send(
        self, key: str, sender: str, chain_id: int, call: Any, gas: int | None
    ) -> Any:
        tx: dict[str, Any] = call.build_transaction(
            {"from": sender, "gasPrice": self.profile.gas_price_wei, "gas": 1, "value": 0}
        )
        tx = {"to": tx["to"], "data": tx["data"], "value": 0, "from": sender}
        tx["gasPrice"] = self.profile.gas_price_wei
        tx["chainId"] = chain_id
        if gas is None:
            try:
                gas = int(self.w3.eth.estimate_gas(cast(TxParams, tx)) * 12 // 10) + 10_000
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise ChainReverted(f"transaction from {sender} would revert: {exc}") from exc
        tx["gas"] = gas
        tx.pop("from")
        lock_name = f"{chain_id}-{sender.lower()}"
        lock_path = data_dir() / "nonces" / f"{lock_name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(lock_name), open(lock_path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                tx["nonce"] = self.w3.eth.get_transaction_count(
                    Web3.to_checksum_address(sender), "pending"
                )
                signed = Account.sign_transaction(tx, key)
                return self.w3.eth.send_raw_transaction(signed.raw_transaction)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def connect(profile: Profile, *, deadline: float, prompt: bool = True) -> ChainClient:
    """A client on `profile`; for `local`, starts the devnet and deploys the contracts once."""
    if profile.is_local:
        from pox_executor.chain import localnet

        node = localnet.start()
        addresses = retry(
            lambda: localnet.ensure_deployed(node), deadline=deadline, what="deploying PoX"
        )
        return ChainClient(profile, node.rpc_url, addresses, load_accounts(profile))
    assert profile.rpc_url is not None
    return ChainClient(
        profile, profile.rpc_url, profile.load_addresses(), load_accounts(profile, prompt=prompt)
    )


def connect_readonly(profile: Profile, *, deadline: float) -> ChainClient:
    """A client for reading only (no keys): what an auditor needs."""
    if profile.is_local:
        from pox_executor.chain import localnet

        node = localnet.start()
        addresses = retry(
            lambda: localnet.ensure_deployed(node), deadline=deadline, what="reading deployment"
        )
        return ChainClient(profile, node.rpc_url, addresses, Accounts({}))
    assert profile.rpc_url is not None
    return ChainClient(profile, profile.rpc_url, profile.load_addresses(), Accounts({}))
