"""`pox runs` and `pox show`: what a run did, read from its bundle without verifying it.

`summarize` gathers the facts (jobs per rule, backends, evidence types, root, sessions, missing
outputs and discarded writes) from the log's entries, read leniently with the one reader in
`provenance/records.py`, and the job DAG from the statements' parent links; `render_*` turn them
into text for people. The status shown is the signed closing's, never run.json's alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pox_executor.errors import PoxError
from pox_executor.provenance.bundle import RunBundle, RunIndex, UnreadableRun
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.records import JobRecord, SessionClose, SessionOpen, read_entries


@dataclass
class RunSummary:
    run_id: str
    index: RunIndex
    jobs: list[JobRecord]
    tree_size: int | None
    root: str | None
    sessions: list[SessionOpen] = field(default_factory=list)
    close: SessionClose | None = None
    chain: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """The signed closing's status; `incomplete` when the log has none (run.json's in ())."""
        if self.close is not None:
            return self.close.status
        return f"incomplete; run.json says {self.index.status}"

    def to_json(self) -> dict[str, Any]:
        per_rule: dict[str, Counter[str]] = defaultdict(Counter)
        for job in self.jobs:
            per_rule[job.rule][job.status] += 1
        return {
            "run_id": self.run_id,
            "status": self.status,
            "created": self.index.created,
            "finished": self.close.finished if self.close else None,
            "snakemake_version": self.sessions[0].snakemake_version if self.sessions else None,
            "records": len(self.jobs),
            "tree_size": self.tree_size,
            "root": self.root,
            "rules": {rule: dict(c) for rule, c in sorted(per_rule.items())},
            "backends": sorted({s.backend for s in self.sessions}),
            "evidence_types": sorted({j.evidence.type for j in self.jobs}),
            "sessions": len(self.sessions),
            "requester": self.sessions[0].requester if self.sessions else None,
            "chain": self.chain,
            "jobs": [
                {
                    "line": j.line_no,
                    "jobid": j.jobid,
                    "rule": j.rule,
                    "attempt": j.attempt,
                    "status": j.status,
                    "wildcards": dict(j.wildcards),
                    "outputs": [s.name for s in j.subjects],
                    "missing_outputs": list(j.missing_outputs),
                    "discarded_writes": list(j.discarded_writes),
                    "envelope": j.digest,
                    "parents": j.parents,
                }
                for j in self.jobs
            ],
        }


def summarize(bundle: RunBundle) -> RunSummary:
    """What the log says, read leniently (unreadable lines are skipped; nothing is verified)."""
    entries = read_entries(bundle.attestations_path, strict=False)
    jobs = [e for e in entries if isinstance(e, JobRecord)]
    sessions = [e for e in entries if isinstance(e, SessionOpen)]
    closes = [e for e in entries if isinstance(e, SessionClose)]
    close = closes[-1] if closes and entries[-1] is closes[-1] else None
    tree_size = root = None
    try:
        cp, _ = parse_signed_note(bundle.read_checkpoint())
        tree_size, root = cp.size, cp.root.hex()
    except (OSError, PoxError):  # read_checkpoint: BundleError
        pass
    return RunSummary(
        bundle.run_id,
        bundle.index,
        jobs,
        tree_size,
        root,
        sessions=sessions,
        close=close,
        chain=chain_summary(bundle),
    )


def _label(job: JobRecord) -> str:
    wildcards = ",".join(f"{k}={v}" for k, v in job.wildcards.items())
    name = f"{job.rule}[{wildcards}]" if wildcards else job.rule
    suffix = f" attempt {job.attempt}" if job.attempt > 1 else ""
    status = "" if job.status == "succeeded" else f" ({job.status.upper()})"
    return f"{name}{suffix}{status}"


def render_summary(summary: RunSummary) -> str:
    data = summary.to_json()
    out = [
        f"run       {summary.run_id}  ({data['status']})",
        f"created   {data['created']}   finished {data['finished'] or '-'}",
        f"snakemake {data['snakemake_version']}   sessions {data['sessions']}",
        f"backends  {', '.join(data['backends'])}   evidence {', '.join(data['evidence_types'])}",
        f"log       {data['records']} records; checkpoint size {data['tree_size']}, "
        f"root {data['root']}",
        "",
        "jobs per rule:",
    ]
    for rule, counts in data["rules"].items():
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        out.append(f"  {rule:24} {detail}")
    out.extend(render_chain(summary.chain))
    out.append("")
    out.append("DAG (each job, its outputs, and the jobs it consumed from):")
    out.extend(render_dag(summary))
    return "\n".join(out)


def chain_summary(bundle: RunBundle) -> dict[str, Any] | None:
    """The chain journal in short: profile, deals mode, anchors and every transaction."""
    from pox_executor.chain.profiles import load_profile
    from pox_executor.chain.settle import read_journal

    journal = read_journal(bundle)
    if journal is None:
        return None
    try:
        profile = load_profile(str(journal.get("profile")))
    except PoxError:
        profile = None
    txs = []
    for action in journal.get("actions", []):
        tx = action.get("tx_hash")
        txs.append(
            {
                "kind": action["kind"],
                "status": action["status"],
                "tx_hash": tx,
                "block": action.get("block"),
                "gas_used": action.get("gas_used"),
                "link": profile.explorer_link(tx) if profile and tx else None,
            }
        )
    return {
        "profile": journal.get("profile"),
        "chain_id": journal.get("chain_id"),
        "deals": journal.get("deals"),
        "run_registry": journal.get("contracts", {}).get("WorkflowRunRegistry"),
        "anchors": journal.get("anchors", []),
        "pending": sum(1 for a in journal.get("actions", []) if a["status"] != "done"),
        "transactions": txs,
    }


def render_chain(chain: dict[str, Any] | None) -> list[str]:
    if chain is None:
        return ["", "chain     not anchored (recorded with --pox-chain none; see `pox anchor`)"]
    out = [
        "",
        f"chain     {chain['profile']} (chain id {chain['chain_id']}), deals {chain['deals']}, "
        f"{chain['pending']} actions pending",
    ]
    for anchor in chain["anchors"]:
        out.append(
            f"  anchor size {anchor['size']} in block {anchor['block']}: {anchor['tx_hash']}"
        )
    sent = [t for t in chain["transactions"] if t["tx_hash"]]
    out.append(f"  {len(sent)} transactions:")
    for tx in sent:
        extra = f"  {tx['link']}" if tx["link"] else ""
        out.append(f"    {tx['kind']:<15} {tx['tx_hash']}  block {tx['block']}{extra}")
    return out


def render_dag(summary: RunSummary) -> list[str]:
    """Jobs in log order (a topological order), each with its parents named by log line."""
    by_digest = {j.digest: j for j in summary.jobs}
    lines = []
    for job in summary.jobs:
        parents = [by_digest[p] for p in job.parents if p in by_digest]
        arrow = ""
        if parents:
            arrow = "  <- " + ", ".join(f"#{p.line_no} {_label(p)}" for p in parents)
        lines.append(f"  #{job.line_no:<4} {_label(job)}{arrow}")
        for output in job.subjects:
            lines.append(f"          -> {output.name}")
        if job.missing_outputs:
            lines.append(f"          MISSING outputs: {', '.join(job.missing_outputs)}")
        if job.discarded_writes:
            shown = ", ".join(job.discarded_writes[:3])
            more = ", ..." if len(job.discarded_writes) > 3 else ""
            lines.append(f"          {len(job.discarded_writes)} discarded writes: {shown}{more}")
    return lines


def render_runs(bundles: list[RunBundle], unreadable: Sequence[UnreadableRun] = ()) -> str:
    """`pox runs`: one row per run, oldest first, then the folders that are no readable bundle."""
    if not bundles and not unreadable:
        return "no runs"
    rows = [f"{'RUN':32} {'STATUS':10} {'RECORDS':>7}  SNAKEFILE"]
    for bundle in bundles:
        try:
            records = sum(
                isinstance(e, JobRecord)
                for e in read_entries(bundle.attestations_path, strict=False)
            )
        except PoxError:
            records = 0
        rows.append(
            f"{bundle.run_id:32} {bundle.index.status:10} {records:>7}  {bundle.index.snakefile}"
        )
    for damaged in unreadable:
        rows.append(f"{damaged.path.name:32} {'UNREADABLE':10} {'-':>7}  {damaged.reason}")
    return "\n".join(rows)
