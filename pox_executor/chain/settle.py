"""Settling a run on chain: the loop that plans, checks and sends a run's chain actions.

Owns `settle(bundle, client, deals=..., deadline=...)`, used at the end of a run (and for
intermediate checkpoints) and by `pox anchor`, and `resolve_anchor_target`, which picks the run,
profile and deals mode `pox anchor` settles. The seams live in their own modules: `journal` (the
typed `chain.json`, its one writer and lock), `planning` (offline: which actions the new log
entries need), `actions` (each action's on-chain "already done" check beside its call) and
`client.ChainClient.send` (the one transaction sender).

One settlement, under the journal lock: plan what the bundle's signed checkpoint adds, save the
journal (every pending action is on disk before anything is sent), then run pending actions in
order. An action planned in an earlier settlement is first checked on chain (done: marked done
without a transaction, so running twice is a no-op; an action whose `done` was not written
before a crash is found done, then without its tx hash). An action planned in this settlement
was never sent by anyone (the lock is held) and is sent without a check, except the kinds others
may have done (`ActionKind.checked_when_fresh`: registrations, anchors). An action that reverts
is checked once more: if its effect is on chain (a concurrent run registered the same app
between the check and the send) it is done, else it is marked failed. Each sent action is
marked done with its tx hash, block and gas; progress is written after each anchor and otherwise
at most once a second, and always at the end. A node that stays down past the deadline leaves
the rest pending (`ChainUnavailable`); `pox anchor` resumes from the journal.

The result digest of a task is the job's DSSE envelope digest (SHA-256 of the log line): it
commits to the statement, the evidence and the enclave challenge address bound in it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.chain.actions import ActionKind, Context, SettleError, action_kind
from pox_executor.chain.client import (
    ChainClient,
    ChainReverted,
    ChainUnavailable,
    is_transient,
    retry,
)
from pox_executor.chain.ids import run_id_bytes
from pox_executor.chain.journal import (
    DEALS_MODES,
    Action,
    AnchorEntry,
    Journal,
    journal_lock,
    load_journal,
    save_journal,
)
from pox_executor.chain.planning import plan
from pox_executor.chain.profiles import Profile, load_profile
from pox_executor.errors import BundleError, UsageError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle, resolve_run
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.log import read_log_lines

__all__ = [
    "DEALS_MODES",
    "AnchorTarget",
    "SettleError",
    "SettleResult",
    "checkpoint_state",
    "read_journal",
    "resolve_anchor_target",
    "settle",
]

SAVE_INTERVAL_S = 1.0


@dataclass
class SettleResult:
    sent: int = 0
    noop: int = 0
    pending: int = 0
    anchored_size: int = 0
    gas_used: int = 0
    error: str | None = None
    txs: list[dict[str, Any]] = field(default_factory=list)


def read_journal(bundle: RunBundle) -> dict[str, Any] | None:
    """The journal as a checked JSON document, for display (`pox show`); None when absent."""
    journal = load_journal(bundle)
    return None if journal is None else journal.to_document()


def checkpoint_state(bundle: RunBundle) -> tuple[int, bytes, list[bytes]]:
    """(size, root, lines) of the bundle's signed checkpoint and the log lines it covers."""
    try:
        checkpoint, _ = parse_signed_note(bundle.checkpoint_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{bundle.checkpoint_path}: no checkpoint") from exc
    lines = read_log_lines(bundle.attestations_path).lines[: checkpoint.size]
    if len(lines) < checkpoint.size:
        raise BundleError(f"{bundle.path}: checkpoint covers more records than the log holds")
    root = merkle.root([merkle.leaf_hash(line) for line in lines]) if lines else b""
    if lines and root != checkpoint.root:
        raise BundleError(f"{bundle.path}: the log's root differs from its checkpoint")
    return checkpoint.size, checkpoint.root, lines


def _new_journal(bundle: RunBundle, client: ChainClient, deals: str) -> Journal:
    origin = bundle.meta.get("origin")
    return Journal(
        run_id=bundle.run_id,
        registry_run_id="0x" + run_id_bytes(bundle.run_id).hex(),
        origin=str(origin) if origin is not None else None,
        profile=client.profile.name,
        chain_id=client.profile.chain_id,
        contracts=dict(client.addresses),
        deals=deals,
        accounts={r: client.accounts.address(r) for r in ("requester", "scheduler", "worker")},
    )


def _same_deployment(journal: Journal, client: ChainClient) -> bool:
    mine = {k.lower(): v.lower() for k, v in client.addresses.items()}
    return journal.chain_id == client.profile.chain_id and mine == {
        k.lower(): v.lower() for k, v in journal.contracts.items()
    }


def settle(
    bundle: RunBundle,
    client: ChainClient,
    *,
    deals: str = "batched",
    deadline: float,
) -> SettleResult:
    """Plan what the bundle's current checkpoint needs on chain, then send what is pending."""
    if deals not in DEALS_MODES:
        raise SettleError(f"deals mode {deals!r}: choose one of {', '.join(DEALS_MODES)}")
    result = SettleResult()
    with journal_lock(bundle):
        journal = load_journal(bundle) or _new_journal(bundle, client, deals)
        if not _same_deployment(journal, client):
            raise SettleError(
                f"run {bundle.run_id} is settled on chain {journal.chain_id} (profile "
                f"{journal.profile}), contracts {journal.contracts.get('PocoHub')}; not on "
                f"{client.profile.name}"
            )
        size, root, lines = checkpoint_state(bundle)
        first_new = len(journal.actions)
        if size > 0:
            plan(journal, lines, size, root)
        save_journal(bundle, journal)  # every pending action is on disk before anything is sent
        _run_pending(
            bundle, journal, Context(client, journal, bundle.workdir), first_new, deadline, result
        )
        result.pending = journal.pending()
        save_journal(bundle, journal)
    return result


def _run_pending(
    bundle: RunBundle,
    journal: Journal,
    ctx: Context,
    first_new: int,
    deadline: float,
    result: SettleResult,
) -> None:
    client = ctx.client
    last_save = time.monotonic()
    for action in journal.actions:
        if action.status == "done":
            continue
        kind = action_kind(action)
        fresh = action.id >= first_new and not kind.checked_when_fresh
        try:
            if not fresh and retry(
                functools.partial(kind.done, ctx, action),
                deadline=deadline,
                what=f"checking {action.kind} #{action.id}",
            ):
                action.status = "done"
                action.noop = True
                result.noop += 1
                continue
            role, call = kind.call(ctx, action)
            tx = client.send(role, call, deadline=deadline)
        except ChainUnavailable as exc:
            result.error = str(exc)
            return
        except ChainReverted as exc:
            if _done_meanwhile(kind, ctx, action, deadline):
                result.noop += 1  # another settler (a concurrent run, `pox anchor`) did it first
                continue
            action.status = "failed"
            action.error = str(exc)
            save_journal(bundle, journal)
            result.error = f"{action.kind} #{action.id}: {exc}"
            return
        except Exception as exc:  # the node dropped mid-call (web3 raises many types)
            if not is_transient(exc):
                raise
            result.error = f"chain unavailable ({exc})"
            return
        action.status = "done"
        action.tx_hash, action.block, action.gas_used, action.role = (
            tx.tx_hash,
            tx.block_number,
            tx.gas_used,
            role,
        )
        if action.kind == "anchor":
            block = client.w3.eth.get_block(tx.block_number)
            journal.anchors.append(
                AnchorEntry(
                    size=int(action.params["size"]),
                    root=str(action.params["root"]),
                    tx_hash=tx.tx_hash,
                    block=tx.block_number,
                    timestamp=int(block["timestamp"]),
                )
            )
            result.anchored_size = int(action.params["size"])
        result.sent += 1
        result.gas_used += tx.gas_used
        result.txs.append({"kind": action.kind, "tx_hash": tx.tx_hash, "gas": tx.gas_used})
        if action.kind == "anchor" or time.monotonic() - last_save > SAVE_INTERVAL_S:
            save_journal(bundle, journal)
            last_save = time.monotonic()


def _done_meanwhile(kind: ActionKind, ctx: Context, action: Action, deadline: float) -> bool:
    """After a revert: is the action's effect on chain after all? Then it is done, not failed."""
    try:
        done = retry(
            functools.partial(kind.done, ctx, action),
            deadline=deadline,
            what=f"re-checking {action.kind} #{action.id}",
        )
    except ChainUnavailable:
        return False
    if done:
        action.status = "done"
        action.noop = True
    return done


@dataclass(frozen=True)
class AnchorTarget:
    """What `pox anchor` settles: the run, on which profile, with which deals mode."""

    bundle: RunBundle
    profile: Profile
    deals: str


def resolve_anchor_target(
    run: str | None, workdir: Path, *, chain: str | None = None, deals: str | None = None
) -> AnchorTarget:
    """The run (id, prefix, directory or latest), its profile and deals mode.

    The profile is, in order: `chain` (`none` is a usage error: nothing to do), the journal's,
    the one the run was recorded with unless `none`, else `local`; the deals mode: `deals`, the
    journal's, the run's, else `batched`.
    """
    bundle = resolve_run(run, workdir)
    journal = load_journal(bundle)
    meta_chain = bundle.meta.get("chain", {})
    run_settings = bundle.meta.get("settings", {})
    if not isinstance(meta_chain, dict) or not isinstance(run_settings, dict):
        raise BundleError(
            f"{bundle.path / 'run.json'}: fields 'chain' and 'settings' must be objects"
        )
    name = chain
    if name is None:  # a run recorded with `none` is anchored later on the local devnet
        name = (journal.profile if journal else None) or meta_chain.get("profile")
        if not name or name == "none":
            name = "local"
    mode = (
        deals
        or (journal.deals if journal else None)
        or meta_chain.get("deals")
        or run_settings.get("deals")
        or "batched"
    )
    if mode not in DEALS_MODES:
        raise UsageError(f"deals mode {mode!r}: choose one of {', '.join(DEALS_MODES)}")
    profile = load_profile(str(name))
    if profile is None:
        raise UsageError("`pox anchor --chain none` has nothing to do")
    return AnchorTarget(bundle=bundle, profile=profile, deals=str(mode))
