"""Planning a run's settlement: which transactions its new log entries need (offline, no node).

Owns `plan(journal, lines, size, root)`. Every log entry in [planned_size, size) that is a job
(`jobs.read_job`) gets a PoCo task: its app is registered by checksum (enclave image digest,
rule name, the rule's script files and the workflow sources), the pool once; `per-job` gives
each job its own deal (match, initialize, contributeAndFinalize), `batched` one batched deal per
(app, enclave challenge) group of the new jobs, finalized in batches of at most `BATCH_MAX`.
App, pool, deal and task ids are all computed off-chain (`ids`), so the journal and the anchor
name them before any transaction is sent. Then one `anchor` action for the checkpoint (size,
root), listing the task ids planned since the previous anchor. Log entries that are not jobs
(a session's opening or closing) are covered by the anchor but get no task.
"""

from __future__ import annotations

import hashlib
import json

from pox_executor.chain import poco
from pox_executor.chain.ids import app_address, app_args, orders, pool_address
from pox_executor.chain.jobs import SettledJob, read_job
from pox_executor.chain.journal import AppEntry, DealEntry, Journal, RecordEntry

BATCH_MAX = 500  # tasks per batch transaction (bounded calldata/gas on an 8M-gas chain)


def plan(journal: Journal, lines: list[bytes], size: int, root: bytes) -> int:
    """Add actions for log entries [planned_size, size) and an anchor of (size, root).

    Returns the number of actions added.
    """
    before = len(journal.actions)
    jobs = [
        job
        for job in (read_job(i, lines[i]) for i in range(journal.planned_size, size))
        if job is not None
    ]
    journal.planned_size = max(journal.planned_size, size)
    new_tasks: list[str] = []
    if journal.deals != "none" and jobs:
        new_tasks = _plan_deals(journal, jobs)
    elif jobs:
        journal.records.extend(
            RecordEntry(index=j.index, digest="0x" + j.digest.hex()) for j in jobs
        )
    last = max((int(a.params["size"]) for a in journal.actions if a.kind == "anchor"), default=0)
    if size > last:
        journal.add_action("anchor", size=size, root="0x" + root.hex(), task_ids=new_tasks)
    return len(journal.actions) - before


def _groups(journal: Journal, jobs: list[SettledJob]) -> list[list[SettledJob]]:
    if journal.deals == "per-job":
        return [[job] for job in jobs]
    keyed: dict[tuple[bytes, str | None], list[SettledJob]] = {}
    for job in jobs:
        keyed.setdefault((job.app_checksum, job.enclave), []).append(job)
    return list(keyed.values())


def _app(journal: Journal, head: SettledJob) -> str:
    """The app of a job's code identity, planning its registration the first time."""
    checksum_hex = "0x" + head.app_checksum.hex()
    if checksum_hex not in journal.apps:
        args = app_args(journal.requester, head.rule, head.app_checksum, head.image_digest)
        address = app_address(journal.contracts["AppRegistry"], args)
        journal.apps[checksum_hex] = AppEntry(address=address, rule=head.rule)
        journal.add_action(
            "register_app",
            address=address,
            owner=args[0],
            name=args[1],
            multiaddr="0x" + args[3].hex(),
            checksum=checksum_hex,
            mrenclave="0x" + args[5].hex(),
        )
    return journal.apps[checksum_hex].address


def _plan_deals(journal: Journal, jobs: list[SettledJob]) -> list[str]:
    if journal.workerpool is None:
        scheduler = journal.accounts["scheduler"]
        journal.workerpool = pool_address(journal.contracts["WorkerpoolRegistry"], scheduler)
        journal.add_action("create_pool", owner=scheduler, address=journal.workerpool)
    batched = journal.deals == "batched"
    new_tasks: list[str] = []
    for group in _groups(journal, jobs):
        head = group[0]
        app = _app(journal, head)
        salt = hashlib.sha256(
            f"{journal.run_id}/{journal.deals}/deal/{head.index}".encode()
        ).digest()
        params = json.dumps(
            {"pox_run": journal.run_id, "records": [head.index, group[-1].index + 1]},
            separators=(",", ":"),
        )
        request = orders(
            app=app,
            pool=journal.workerpool,
            requester=journal.requester,
            volume=len(group),
            salt=salt,
            params=params,
            batched=batched,
        )["RequestOrder"]
        request_hash = poco.order_hash(
            "RequestOrder", request, journal.chain_id, journal.contracts["PocoHub"]
        )
        deal = poco.deal_id(request_hash, 0)
        deal_hex = "0x" + deal.hex()
        journal.deals_list.append(
            DealEntry(deal=deal_hex, app=app, volume=len(group), first_record=head.index)
        )
        journal.add_action(
            "match",
            deal=deal_hex,
            app=app,
            volume=len(group),
            salt="0x" + salt.hex(),
            params=params,
        )
        for idx, job in enumerate(group):
            task = "0x" + poco.task_id(deal, idx).hex()
            digest = "0x" + job.digest.hex()
            journal.records.append(
                RecordEntry(
                    index=job.index,
                    digest=digest,
                    deal=deal_hex,
                    idx=idx,
                    task=task,
                    app=app,
                    enclave=job.enclave,
                )
            )
            new_tasks.append(task)
            if not batched:
                journal.add_action("initialize", deal=deal_hex, idx=idx, task=task)
                journal.add_action("finalize", task=task, digest=digest, enclave=job.enclave)
        if batched:
            for start in range(0, len(group), BATCH_MAX):
                chunk = group[start : start + BATCH_MAX]
                journal.add_action(
                    "finalize_batch",
                    deal=deal_hex,
                    first=start,
                    count=len(chunk),
                    digests=["0x" + job.digest.hex() for job in chunk],
                    enclave=head.enclave,
                )
    journal.records.sort(key=lambda rec: rec.index)
    return new_tasks
