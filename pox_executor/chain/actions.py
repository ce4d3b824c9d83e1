"""The journal's actions, one per kind: its on-chain "already done" check beside its call.

Owns `ACTIONS` (kind -> `ActionKind`). Each kind says how to tell, by reading the chain, that
its effect is already there (so settling twice is a no-op and an action whose `done` was never
written is not sent again), which role sends it, and the contract call that performs it.
`checked_when_fresh` marks the kinds that can be done by someone else even right after they
were planned (registrations other runs may have made; an anchor, one call per checkpoint); the
others are checked only when resumed from an earlier settlement. Reads of the run registry use
the journal's requester: only the run's own requester's anchors count (`WorkflowRunRegistry`
keys runs by submitter and run id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from pox_executor.chain import poco
from pox_executor.chain.client import ChainClient
from pox_executor.chain.ids import APP_TYPE, POOL_DESCRIPTION, orders
from pox_executor.chain.journal import Action, Journal
from pox_executor.errors import PoxError

TASK_COMPLETED = 3  # PoCo's TaskStatusEnum.COMPLETED


class SettleError(PoxError):
    """The journal and the bundle or the chain disagree."""


@dataclass(frozen=True)
class Context:
    """What an action needs: the chain, the run's journal, the working directory (enclave keys)."""

    client: ChainClient
    journal: Journal
    workdir: Path


@dataclass(frozen=True)
class ActionKind:
    done: Callable[[Context, Action], bool]
    call: Callable[[Context, Action], tuple[str, Any]]
    checked_when_fresh: bool = False


def _b32(hex_text: str) -> bytes:
    return bytes.fromhex(str(hex_text).removeprefix("0x"))


def _enclave_key(workdir: Path, address: str | None) -> str:
    if address is None:
        raise SettleError("a record binds no enclave challenge key (recorded before PoX chain)")
    path = workdir / ".pox" / "enclave-keys" / f"{Web3.to_checksum_address(address)}.key"
    try:
        return "0x" + path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        from pox_executor.sms.scheduler import release_challenge_key

        held = release_challenge_key(workdir, Web3.to_checksum_address(address))
        if held is not None:  # the key broker holds it (--pox-sms): released to attested jobs only
            return held
        raise SettleError(
            f"{path}: the enclave challenge key is gone; its results cannot be signed"
        ) from exc


def _uri(ctx: Context) -> str:
    return f"pox-run:{ctx.journal.run_id}"


# -- register_app -------------------------------------------------------------------------------


def _app_done(ctx: Context, a: Action) -> bool:
    return bool(
        ctx.client.contract("AppRegistry").functions.isRegistered(a.params["address"]).call()
    )


def _app_call(ctx: Context, a: Action) -> tuple[str, Any]:
    p = a.params
    return "requester", ctx.client.contract("AppRegistry").functions.createApp(
        p["owner"],
        p["name"],
        APP_TYPE,
        _b32(p["multiaddr"]),
        _b32(p["checksum"]),
        _b32(p["mrenclave"]),
    )


# -- create_pool --------------------------------------------------------------------------------


def _pool_done(ctx: Context, a: Action) -> bool:
    registry = ctx.client.contract("WorkerpoolRegistry").functions
    return bool(registry.isRegistered(a.params["address"]).call())


def _pool_call(ctx: Context, a: Action) -> tuple[str, Any]:
    registry = ctx.client.contract("WorkerpoolRegistry").functions
    return "scheduler", registry.createWorkerpool(a.params["owner"], POOL_DESCRIPTION)


# -- match --------------------------------------------------------------------------------------


def _match_done(ctx: Context, a: Action) -> bool:
    return int(ctx.client.hub.functions.viewDeal(_b32(a.params["deal"])).call()[12]) > 0


def _match_call(ctx: Context, a: Action) -> tuple[str, Any]:
    p, journal, client = a.params, ctx.journal, ctx.client
    assert journal.workerpool is not None  # planned with the deal
    chain_id, hub = journal.chain_id, journal.contracts["PocoHub"]
    signers = {"AppOrder": "requester", "WorkerpoolOrder": "scheduler", "RequestOrder": "requester"}
    book = orders(
        app=p["app"],
        pool=journal.workerpool,
        requester=journal.requester,
        volume=int(p["volume"]),
        salt=_b32(p["salt"]),
        params=p["params"],
        batched=journal.deals == "batched",
    )
    signed = {
        t: {
            **o,
            "sign": poco.sign_order(t, o, chain_id, hub, client.accounts.key(signers[t]))
            if t in signers
            else b"",
        }
        for t, o in book.items()
    }
    return "requester", client.hub.functions.matchOrders(
        signed["AppOrder"],
        signed["DatasetOrder"],
        signed["WorkerpoolOrder"],
        signed["RequestOrder"],
    )


# -- initialize / finalize (per-job deals) ------------------------------------------------------


def _task_status(ctx: Context, a: Action) -> int:
    return int(ctx.client.hub.functions.viewTask(_b32(a.params["task"])).call()[0])


def _initialize_call(ctx: Context, a: Action) -> tuple[str, Any]:
    return "worker", ctx.client.hub.functions.initialize(
        _b32(a.params["deal"]), int(a.params["idx"])
    )


def _finalize_call(ctx: Context, a: Action) -> tuple[str, Any]:
    p, client = a.params, ctx.client
    worker = client.accounts.address("worker")
    task, digest = _b32(p["task"]), _b32(p["digest"])
    enclave = Web3.to_checksum_address(p["enclave"])
    auth = poco.sign_authorization(client.accounts.key("scheduler"), worker, task, enclave)
    seal = poco.sign_result(_enclave_key(ctx.workdir, enclave), worker, task, digest)
    return "worker", client.hub.functions.contributeAndFinalize(
        task, digest, _uri(ctx).encode(), b"", enclave, seal, auth
    )


# -- finalize_batch (batched deals) -------------------------------------------------------------


def _batch_done(ctx: Context, a: Action) -> bool:
    done = int(ctx.client.hub.functions.viewBatchedCount(_b32(a.params["deal"])).call())
    return done >= int(a.params["first"]) + int(a.params["count"])


def _batch_call(ctx: Context, a: Action) -> tuple[str, Any]:
    p, client = a.params, ctx.client
    worker = client.accounts.address("worker")
    deal = _b32(p["deal"])
    first, count = int(p["first"]), int(p["count"])  # deals matched here start at index 0
    digests = [_b32(d) for d in p["digests"]]
    root = poco.batch_results_root(deal, first, digests)
    batch = poco.batch_id(deal, first, count)
    enclave = Web3.to_checksum_address(p["enclave"])
    auth = poco.sign_authorization(client.accounts.key("scheduler"), worker, batch, enclave)
    seal = poco.sign_result(_enclave_key(ctx.workdir, enclave), worker, batch, root)
    return "worker", client.hub.functions.contributeAndFinalizeBatch(
        deal, first, count, root, _uri(ctx).encode(), enclave, seal, auth
    )


# -- anchor -------------------------------------------------------------------------------------


def _anchor_done(ctx: Context, a: Action) -> bool:
    """Anchored by the run's requester at this size, or superseded by its later checkpoint."""
    runs = ctx.client.runs.functions
    requester = Web3.to_checksum_address(ctx.journal.requester)
    run_id = _b32(ctx.journal.registry_run_id)
    if bytes(runs.rootAt(requester, run_id, int(a.params["size"])).call()) == _b32(
        a.params["root"]
    ):
        return True
    latest = int(runs.viewRun(requester, run_id).call()[0])
    if latest > int(a.params["size"]):
        a.superseded = True
        return True  # the requester anchored a later checkpoint; this one can no longer be
    return False


def _anchor_call(ctx: Context, a: Action) -> tuple[str, Any]:
    journal = ctx.journal
    return "requester", ctx.client.runs.functions.anchorRun(
        _b32(journal.registry_run_id),
        journal.origin,
        int(a.params["size"]),
        _b32(a.params["root"]),
        _uri(ctx),
        [_b32(t) for t in a.params["task_ids"]],
    )


ACTIONS: dict[str, ActionKind] = {
    "register_app": ActionKind(_app_done, _app_call, checked_when_fresh=True),
    "create_pool": ActionKind(_pool_done, _pool_call, checked_when_fresh=True),
    "match": ActionKind(_match_done, _match_call),
    "initialize": ActionKind(lambda ctx, a: _task_status(ctx, a) != 0, _initialize_call),
    "finalize": ActionKind(lambda ctx, a: _task_status(ctx, a) == TASK_COMPLETED, _finalize_call),
    "finalize_batch": ActionKind(_batch_done, _batch_call),
    "anchor": ActionKind(_anchor_done, _anchor_call, checked_when_fresh=True),
}


def action_kind(action: Action) -> ActionKind:
    try:
        return ACTIONS[action.kind]
    except KeyError:
        raise SettleError(f"unknown journal action {action.kind!r}") from None
