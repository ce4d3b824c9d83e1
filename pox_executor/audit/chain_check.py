"""On-chain checks of a run bundle, the part of `pox verify` that `--offline` skips.

Owns comparing the bundle with the chain, trusting the journal (`chain.json`) only for where to
look. The run's requester (the account whose anchors count) comes from the signed log when the
caller passes it (`expected_requester`); otherwise from the journal, and the report says so. The
journal's contracts must be the profile's deployment. The latest checkpoint the requester
anchored for the run in the WorkflowRunRegistry (runs are keyed by submitter and run id, so a
stranger's anchor of the same run id is never read) must be a prefix of the bundle's log: an
anchored size larger than the log, or an anchored root that differs from the log's root at that
size, is a rollback below an anchor; and it must equal the bundle's checkpoint. Every anchor the
journal lists must equal the root the log had at that size and have been sent by the requester
(block number and time of each are reported). Every task must be completed with the result
digest recomputed from the bundle (per-job: `viewTask`; batched: the batch's RFC 9162 results
root); every deal must name the registered app whose checksum is recomputed from the records,
and the registered workerpool.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from eth_typing import HexStr
from web3 import Web3

from pox_executor.audit.findings import Report
from pox_executor.chain import poco
from pox_executor.chain.client import ChainClient, connect_readonly
from pox_executor.chain.ids import run_id_bytes
from pox_executor.chain.jobs import SettledJob, read_job
from pox_executor.chain.journal import Journal, RecordEntry, load_journal
from pox_executor.chain.profiles import load_profile
from pox_executor.errors import PoxError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.log import read_log_lines


def _b32(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def check_chain(
    bundle: RunBundle,
    report: Report,
    *,
    chain: str | None = None,
    timeout_s: float = 30.0,
    expected_requester: str | None = None,
) -> None:
    """Check the bundle against the chain; `expected_requester` is the run's requester address
    as the signed log states it (None: the journal's, which is only an index, is used)."""
    try:
        journal = load_journal(bundle)
    except PoxError as exc:
        report.error("chain", str(exc))
        return
    meta_chain = bundle.meta.get("chain")
    recorded = meta_chain.get("profile") if isinstance(meta_chain, dict) else None
    expected = chain or (journal.profile if journal else None) or recorded
    if journal is None:
        if expected_requester is not None and chain != "none":
            report.error(
                "chain",
                f"the signed log names requester {expected_requester}, so the run was to be "
                "anchored, but its chain.json is missing",
            )
            return
        if not expected or expected == "none":
            report.note("chain", "the run is not anchored (recorded with --pox-chain none)")
        else:
            report.error("chain", f"the run was to be anchored on {expected} but has no chain.json")
        return
    try:
        profile = load_profile(str(expected))
        if profile is None:
            report.note("chain", "chain checks skipped (--chain none)")
            return
        client = connect_readonly(profile, deadline=time.monotonic() + timeout_s)
        client.w3.eth.block_number  # noqa: B018 - fails fast when the node is down
    except Exception as exc:
        report.error("chain", f"cannot reach chain {expected}: {exc} (use --offline to skip)")
        return
    try:
        _check(bundle, report, journal, client, expected_requester)
    except PoxError as exc:
        report.error("chain", str(exc))
    except Exception as exc:  # the node failed mid-check
        report.error("chain", f"chain check interrupted: {exc} (use --offline to skip)")


def _requester(report: Report, journal: Journal, expected: str | None) -> str | None:
    """The address whose anchors count, checked against the signed one when there is one."""
    try:
        recorded = Web3.to_checksum_address(journal.requester)
    except ValueError:
        report.error("anchor", f"the journal's requester {journal.requester!r} is not an address")
        return None
    if expected is None:
        report.note(
            "anchor",
            f"requester {recorded} taken from chain.json (unsigned): the log names no requester",
        )
        return recorded
    try:
        signed = Web3.to_checksum_address(expected)
    except ValueError:
        report.error("anchor", f"the log's requester {expected!r} is not an address")
        return None
    if signed != recorded:
        report.error(
            "anchor",
            f"the journal's requester {recorded} is not the run's requester {signed} (signed in "
            "the log); anchors are read under the signed one",
        )
    return signed


def _check_latest_anchor(
    report: Report, runs: Any, requester: str, run_id: bytes, leaves: list[bytes], size: int
) -> int | None:
    """Compare the requester's latest anchor with the log; the anchored size when it matches."""
    anchored_size, anchored_root, _count, _origin = runs.viewRun(requester, run_id).call()
    anchored_size, anchored_root = int(anchored_size), bytes(anchored_root)
    if anchored_size == 0:
        report.error(
            "anchor", f"the run is not anchored on chain by {requester} (run `pox anchor`)"
        )
        return None
    if anchored_size > len(leaves):
        report.error(
            "anchor",
            f"rollback below an anchor: {requester} anchored size {anchored_size}, but the "
            f"bundle's log holds {len(leaves)} entries",
        )
        return None
    if merkle.root(leaves[:anchored_size]) != anchored_root:
        report.error(
            "anchor",
            f"rollback below an anchor: the root anchored at size {anchored_size} "
            f"({anchored_root.hex()[:16]}...) is not the bundle's log at that size",
        )
        return None
    if anchored_size != size:
        report.error(
            "anchor",
            f"the bundle's checkpoint (size {size}) is not anchored; the latest anchor is size "
            f"{anchored_size} (run `pox anchor`)",
        )
        return None
    return anchored_size


def _check(
    bundle: RunBundle,
    report: Report,
    journal: Journal,
    client: ChainClient,
    expected_requester: str | None,
) -> None:
    profile = client.profile
    mine = {k: v.lower() for k, v in client.addresses.items()}
    theirs = {k: str(v).lower() for k, v in journal.contracts.items()}
    if mine != theirs or journal.chain_id != profile.chain_id:
        report.error(
            "chain",
            f"the journal names contracts {theirs.get('PocoHub')} on chain "
            f"{journal.chain_id}, not the {profile.name} deployment",
        )
        return
    requester = _requester(report, journal, expected_requester)
    if requester is None:
        return
    # The bundle as it is now: the checkpoint's size, the root of the log's lines (offline
    # verification separately checks them against the signed checkpoint).
    all_lines = read_log_lines(bundle.attestations_path).lines
    try:
        checkpoint, _ = parse_signed_note(bundle.read_checkpoint())
        size = checkpoint.size
    except (OSError, PoxError):
        size = len(all_lines)
    leaves = [merkle.leaf_hash(line) for line in all_lines]
    lines = all_lines[:size]
    run_id = run_id_bytes(bundle.run_id)
    runs = client.runs.functions
    facts: dict[str, Any] = {"chain": profile.name, "requester": requester}
    anchored = _check_latest_anchor(report, runs, requester, run_id, leaves, size)
    if anchored is not None:
        facts["anchored_size"] = anchored
    facts["anchors"] = int(runs.viewRun(requester, run_id).call()[2])
    for anchor in journal.anchors:
        at = anchor.size
        on_chain = bytes(runs.rootAt(requester, run_id, at).call())
        if at > len(leaves) or on_chain != merkle.root(leaves[:at]):
            report.error(
                "anchor", f"the root anchored at size {at} is not the bundle's log at {at}"
            )
            continue
        tx = HexStr(anchor.tx_hash)
        try:
            sent = client.w3.eth.get_transaction(tx)
            receipt = client.w3.eth.get_transaction_receipt(tx)
            block = client.w3.eth.get_block(receipt["blockNumber"])
        except Exception:
            report.warn("anchor", f"size {at}: transaction {tx} not found on this node")
            continue
        if Web3.to_checksum_address(str(sent["from"])) != requester:
            report.error(
                "anchor", f"size {at}: transaction {tx} was sent by {sent['from']}, not {requester}"
            )
            continue
        when = datetime.fromtimestamp(int(block["timestamp"]), UTC).isoformat()
        link = profile.explorer_link(tx)
        report.note(
            "anchor",
            f"size {at} anchored by {requester} in block {receipt['blockNumber']} at {when}, "
            f"tx {tx}" + (f" ({link})" if link else ""),
        )

    # -- tasks and deals ------------------------------------------------------------------------
    records = [r for r in journal.records if r.task]
    if not records:
        report.facts.update(facts)
        return
    hub = client.hub.functions
    by_deal: dict[str, list[RecordEntry]] = defaultdict(list)
    for r in records:
        by_deal[str(r.deal)].append(r)
    apps = client.contract("AppRegistry").functions
    pools = client.contract("WorkerpoolRegistry").functions
    completed = 0
    for deal_hex, group in by_deal.items():
        deal = _b32(deal_hex)
        group.sort(key=lambda r: int(r.idx or 0))
        infos: list[SettledJob] = []
        for r in group:
            index = r.index
            if index >= len(lines):
                report.error("task", f"record {index} is not in the bundle's log")
                return
            info = read_job(index, lines[index])
            if info is None:
                report.error("task", f"log entry {index} has a task but is not a job statement")
                return
            infos.append(info)
            if r.task != "0x" + poco.task_id(deal, int(r.idx or 0)).hex():
                report.error("task", f"record {index}: task id is not PoCo's id of its deal slot")
        view = hub.viewDeal(deal).call()
        app, pool = str(view[0][0]), str(view[2][0])
        if int(view[12]) == 0:
            report.error("deal", f"deal {deal_hex[:18]}... does not exist on chain")
            continue
        if app.lower() != str(group[0].app).lower() or not apps.isRegistered(app).call():
            report.error("deal", f"deal {deal_hex[:18]}... names app {app}, not the registered one")
        else:
            checksum = bytes(apps.viewApp(app).call()[3])
            if any(info.app_checksum != checksum for info in infos):
                report.error(
                    "deal", f"deal {deal_hex[:18]}...: app checksum differs from the records'"
                )
        if (
            pool.lower() != str(journal.workerpool or "").lower()
            or not pools.isRegistered(pool).call()
        ):
            report.error("deal", f"deal {deal_hex[:18]}... names workerpool {pool}, not the pool")
        batches = int(hub.countBatches(deal).call())
        if batches == 0:  # per-task deal
            for r, info in zip(group, infos, strict=True):
                task = hub.viewTask(_b32(str(r.task))).call()
                if int(task[0]) != 3:
                    report.error("task", f"record {r.index}: task not completed on chain")
                elif bytes(task[11]) != info.digest:
                    report.error(
                        "task",
                        f"record {r.index}: on-chain result digest differs from the bundle's",
                    )
                else:
                    completed += 1
        else:
            digests = [info.digest for info in infos]
            covered = 0
            for i in range(batches):
                first, count, _worker, results_root = hub.viewBatch(deal, i).call()
                chunk = digests[int(first) : int(first) + int(count)]
                if poco.batch_results_root(deal, int(first), chunk) != bytes(results_root):
                    report.error(
                        "task",
                        f"deal {deal_hex[:18]}... batch {i}: results root differs from "
                        "the bundle's",
                    )
                else:
                    covered += len(chunk)
            if covered != len(group):
                report.error(
                    "task", f"deal {deal_hex[:18]}...: {len(group) - covered} tasks not finalized"
                )
            completed += covered
    facts["tasks_completed"] = completed
    facts["deals"] = len(by_deal)
    report.facts.update(facts)
