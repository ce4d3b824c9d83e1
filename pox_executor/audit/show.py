"""`pox runs` and `pox show`: what a run did, read from its bundle without verifying it.

`summarize` gathers the facts (jobs per rule, backends, evidence types, root, sessions) and the
job DAG rebuilt from the statements' parent links; `render_*` turn them into text for people.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from pox_executor.audit.verify import decode_payload
from pox_executor.errors import PoxError
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.dsse import envelope_digest
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.statement import KIND_PARENT


@dataclass
class JobLine:
    line_no: int
    digest: str
    jobid: int
    rule: str
    attempt: int
    status: str
    wildcards: dict[str, str]
    outputs: list[str]
    parents: list[str] = field(default_factory=list)
    evidence_type: str = ""


@dataclass
class RunSummary:
    run_id: str
    meta: dict[str, Any]
    jobs: list[JobLine]
    tree_size: int | None
    root: str | None
    chain: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        per_rule: dict[str, Counter[str]] = defaultdict(Counter)
        for job in self.jobs:
            per_rule[job.rule][job.status] += 1
        return {
            "run_id": self.run_id,
            "status": self.meta.get("status"),
            "created": self.meta.get("created"),
            "finished": self.meta.get("finished"),
            "snakemake_version": self.meta.get("snakemake_version"),
            "records": len(self.jobs),
            "tree_size": self.tree_size,
            "root": self.root,
            "rules": {rule: dict(c) for rule, c in sorted(per_rule.items())},
            "backends": sorted({str(s.get("backend")) for s in self.meta.get("sessions", [])}),
            "evidence_types": sorted({j.evidence_type for j in self.jobs}),
            "sessions": len(self.meta.get("sessions", [])),
            "chain": self.chain,
            "jobs": [
                {
                    "line": j.line_no,
                    "jobid": j.jobid,
                    "rule": j.rule,
                    "attempt": j.attempt,
                    "status": j.status,
                    "wildcards": j.wildcards,
                    "outputs": j.outputs,
                    "envelope": j.digest,
                    "parents": j.parents,
                }
                for j in self.jobs
            ],
        }


def summarize(bundle: RunBundle) -> RunSummary:
    jobs: list[JobLine] = []
    for index, line in enumerate(read_log_lines(bundle.attestations_path).lines):
        try:
            st = decode_payload(line)
            build = st["predicate"]["buildDefinition"]
            internal = build["internalParameters"]
            byproducts = st["predicate"]["runDetails"]["byproducts"]
            evidence = next(
                (
                    b["annotations"]["evidence"]["type"]
                    for b in byproducts
                    if b.get("name") == "pox:tee-evidence"
                ),
                "?",
            )
            jobs.append(
                JobLine(
                    line_no=index + 1,
                    digest=envelope_digest(line),
                    jobid=int(internal["jobid"]),
                    rule=str(build["externalParameters"]["rule"]),
                    attempt=int(internal["attempt"]),
                    status=str(internal["status"]),
                    wildcards=dict(build["externalParameters"].get("wildcards", {})),
                    outputs=[s["name"] for s in st["subject"]],
                    parents=[
                        d["digest"]["sha256"]
                        for d in build["resolvedDependencies"]
                        if d.get("annotations", {}).get("pox.kind") == KIND_PARENT
                    ],
                    evidence_type=str(evidence),
                )
            )
        except (PoxError, KeyError, TypeError, ValueError):
            continue
    tree_size = root = None
    try:
        cp, _ = parse_signed_note(bundle.checkpoint_path.read_text(encoding="utf-8"))
        tree_size, root = cp.size, cp.root.hex()
    except (OSError, PoxError):
        pass
    return RunSummary(bundle.run_id, bundle.meta, jobs, tree_size, root, chain_summary(bundle))


def _label(job: JobLine) -> str:
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
        for output in job.outputs:
            lines.append(f"          -> {output}")
    return lines


def render_runs(bundles: list[RunBundle]) -> str:
    if not bundles:
        return "no runs"
    rows = [f"{'RUN':32} {'STATUS':10} {'RECORDS':>7}  SNAKEFILE"]
    for bundle in bundles:
        records = len(read_log_lines(bundle.attestations_path).lines)
        rows.append(
            f"{bundle.run_id:32} {bundle.meta.get('status', '?'):10} {records:>7}  "
            f"{bundle.meta.get('snakefile', '?')}"
        )
    return "\n".join(rows)
