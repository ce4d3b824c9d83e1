"""On-chain checks of a run bundle, the part of `pox verify` that `--offline` skips.

Owns comparing the bundle with the chain, trusting the journal (`chain.json`) only for where to
look: the journal's contracts must be the profile's deployment; the run's latest anchor in the
WorkflowRunRegistry must equal the bundle's checkpoint (size and root), and every anchor the
journal lists must equal the root the bundle's log had at that size (block number and time of
each are reported); every task must be completed with the result digest recomputed from the
bundle (per-job: `viewTask`; batched: the batch's RFC 9162 results root); every deal must name
the registered app whose checksum is recomputed from the records, and the registered workerpool.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from pox_executor.audit.findings import Report
from pox_executor.chain import poco
from pox_executor.chain.client import ChainClient, connect_readonly
from pox_executor.chain.profiles import load_profile
from pox_executor.chain.settle import read_journal, record_info, run_id_bytes
from pox_executor.errors import PoxError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.log import read_log_lines


def _b32(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def check_chain(
    bundle: RunBundle, report: Report, *, chain: str | None = None, timeout_s: float = 30.0
) -> None:
    journal = read_journal(bundle)
    expected = (
        chain or (journal or {}).get("profile") or bundle.meta.get("chain", {}).get("profile")
    )
    if journal is None:
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
        _check(bundle, report, journal, client)
    except PoxError as exc:
        report.error("chain", str(exc))
    except Exception as exc:  # the node failed mid-check
        report.error("chain", f"chain check interrupted: {exc} (use --offline to skip)")


def _check(bundle: RunBundle, report: Report, journal: dict[str, Any], client: ChainClient) -> None:
    profile = client.profile
    mine = {k: v.lower() for k, v in client.addresses.items()}
    theirs = {k: str(v).lower() for k, v in journal.get("contracts", {}).items()}
    if mine != theirs or int(journal.get("chain_id", -1)) != profile.chain_id:
        report.error(
            "chain",
            f"the journal names contracts {theirs.get('pocohub', theirs.get('PocoHub'))} on chain "
            f"{journal.get('chain_id')}, not the {profile.name} deployment",
        )
        return
    # The bundle as it is now: the checkpoint's size, the root of the log's lines (offline
    # verification separately checks them against the signed checkpoint).
    try:
        checkpoint, _ = parse_signed_note(bundle.checkpoint_path.read_text(encoding="utf-8"))
        size = checkpoint.size
    except (OSError, PoxError):
        size = len(read_log_lines(bundle.attestations_path).lines)
    lines = read_log_lines(bundle.attestations_path).lines[:size]
    leaves = [merkle.leaf_hash(line) for line in lines]
    root = merkle.root(leaves) if leaves else b""
    run_id = run_id_bytes(bundle.run_id)
    runs = client.runs.functions
    _submitter, anchored_size, anchored_root, count, _ = runs.viewRun(run_id).call()
    facts: dict[str, Any] = {"chain": profile.name, "anchors": int(count)}
    if int(anchored_size) == 0:
        report.error("anchor", "the run is not anchored on chain (run `pox anchor`)")
    elif int(anchored_size) != size or bytes(anchored_root) != root:
        report.error(
            "anchor",
            f"the anchored checkpoint (size {anchored_size}, root {bytes(anchored_root).hex()[:16]}"
            f"...) differs from the bundle's (size {size}, root {root.hex()[:16]}...)",
        )
    else:
        facts["anchored_size"] = size
    for anchor in journal.get("anchors", []):
        at = int(anchor["size"])
        on_chain = bytes(runs.rootAt(run_id, at).call())
        if at > len(leaves) or on_chain != merkle.root(leaves[:at]):
            report.error(
                "anchor", f"the root anchored at size {at} is not the bundle's log at {at}"
            )
            continue
        tx = anchor.get("tx_hash", "")
        try:
            receipt = client.w3.eth.get_transaction_receipt(tx)
            block = client.w3.eth.get_block(receipt["blockNumber"])
            when = datetime.fromtimestamp(int(block["timestamp"]), UTC).isoformat()
            link = profile.explorer_link(tx)
            report.note(
                "anchor",
                f"size {at} anchored in block {receipt['blockNumber']} at {when}, tx {tx}"
                + (f" ({link})" if link else ""),
            )
        except Exception:
            report.warn("anchor", f"size {at}: transaction {tx} not found on this node")

    # -- tasks and deals ------------------------------------------------------------------------
    records = [r for r in journal.get("records", []) if r.get("task")]
    if not records:
        report.facts.update(facts)
        return
    hub = client.hub.functions
    by_deal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_deal[r["deal"]].append(r)
    apps = client.contract("AppRegistry").functions
    pools = client.contract("WorkerpoolRegistry").functions
    completed = 0
    for deal_hex, group in by_deal.items():
        deal = _b32(deal_hex)
        group.sort(key=lambda r: int(r["idx"]))
        infos = []
        for r in group:
            index = int(r["index"])
            if index >= len(lines):
                report.error("task", f"record {index} is not in the bundle's log")
                return
            info = record_info(index, lines[index])
            infos.append(info)
            if r["task"] != "0x" + poco.task_id(deal, int(r["idx"])).hex():
                report.error("task", f"record {index}: task id is not PoCo's id of its deal slot")
        view = hub.viewDeal(deal).call()
        app, pool = str(view[0][0]), str(view[2][0])
        if int(view[12]) == 0:
            report.error("deal", f"deal {deal_hex[:18]}... does not exist on chain")
            continue
        if app.lower() != str(group[0]["app"]).lower() or not apps.isRegistered(app).call():
            report.error("deal", f"deal {deal_hex[:18]}... names app {app}, not the registered one")
        else:
            checksum = bytes(apps.viewApp(app).call()[3])
            if any(info.app_checksum != checksum for info in infos):
                report.error(
                    "deal", f"deal {deal_hex[:18]}...: app checksum differs from the records'"
                )
        if (
            pool.lower() != str(journal.get("workerpool", "")).lower()
            or not pools.isRegistered(pool).call()
        ):
            report.error("deal", f"deal {deal_hex[:18]}... names workerpool {pool}, not the pool")
        batches = int(hub.countBatches(deal).call())
        if batches == 0:  # per-task deal
            for r, info in zip(group, infos, strict=True):
                task = hub.viewTask(_b32(r["task"])).call()
                if int(task[0]) != 3:
                    report.error("task", f"record {r['index']}: task not completed on chain")
                elif bytes(task[11]) != info.digest:
                    report.error(
                        "task",
                        f"record {r['index']}: on-chain result digest differs from the bundle's",
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
