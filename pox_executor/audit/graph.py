"""The provenance graph of one or more runs: a networkx DiGraph of jobs and files (stable API).

Owns turning run bundles into one graph that `lineage`, `dag`, `export`, `diff` and the HTML
explorer share. Records are read only through `provenance/records.py`; whether each record
verified comes from `audit/verify.py` (`verify_run`), never from a check of our own.

Nodes (ids from `job_node` / `file_node`):

- a job attempt, id `job:<envelope digest>`, attributes: `kind` "job", `run_id`, `envelope`
  (the envelope digest children and the chain cite), `line`, `jobid`, `rule`, `attempt`,
  `status` ("succeeded"/"failed"), `exit_code`, `wildcards`, `params`, `threads`, `resources`,
  `inputs` and `outputs` (lists of `{name, sha256, ...}`), `code` (`{name, sha256, command}`),
  `environment` (`{name, sha256, annotations}`), `evidence_type`, `simulated`, `backend`,
  `builder_id`, `measurement`, `image_digest`, `isolated`, `isolation`, `started`, `finished`,
  `verified` (bool: no error of `verify_run` concerns this record or the whole run; None when
  the graph was built with `verify=False`), `problems` (those errors' messages), `chain_txs`
  (`[{kind, tx_hash, block}]` from the run's chain journal, an unsigned index), `label`;
- a file version, id `file:<name>@<sha256>` (the same bytes under the same name are one node,
  across runs), attributes: `kind` "file", `name`, `sha256`, `size_bytes`, `directory`, `temp`,
  `cid` (None: no CID is recorded yet).

Edges: file -> job `kind` "input" with `producer` (the producing job's node id, as the consumer's
signed record names it, or as found by digest in another run: then `matched` is "digest"; None
for raw data) and job -> file `kind` "output" (or "in-directory" for a file inside a
`directory()` output, "same-digest" for a raw input of another run with the bytes of this
output). The graph's `graph["runs"]` maps run id -> `{status, ok,
simulated, errors, tree_size, root, workdir, bundle, backend, sources, config_sha256,
config_overrides (`--config`: provenance/config_overrides.py), snakemake_version, pox_version,
started, finished, chain}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from pox_executor.audit.findings import Report
from pox_executor.audit.show import chain_summary
from pox_executor.audit.verify import verify_run
from pox_executor.enclave.verifiers import Policy
from pox_executor.errors import PoxError
from pox_executor.provenance.bundle import RunBundle, list_runs
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.records import JobRecord, SessionClose, SessionOpen, read_entries
from pox_executor.provenance.statement import (
    KIND_CODE,
    KIND_ENVIRONMENT,
    KIND_INPUT,
)

__all__ = [
    "FILE",
    "JOB",
    "build_graph",
    "file_node",
    "job_dag",
    "job_node",
    "jobs_of",
    "producer_of",
    "run_graph",
]

JOB = "job"
FILE = "file"
_LINE = re.compile(r"^line (\d+)\b")
_MEASUREMENT = re.compile(r"@sha256:([0-9a-fA-F]+)$")


def job_node(envelope: str) -> str:
    return f"job:{envelope}"


def file_node(name: str, sha256: str | None) -> str:
    return f"file:{name}@{sha256 or 'none'}"


def run_graph(
    bundle: RunBundle,
    *,
    verify: bool = True,
    allow_simulated: bool = False,
    policy: Policy | None = None,
    with_other_runs: bool = True,
) -> nx.DiGraph:
    """The graph of `bundle`, plus (by default) every other run in its working directory, so
    that inputs produced by earlier runs lead to their producers."""
    bundles = [bundle]
    if with_other_runs:
        bundles += [b for b in list_runs(bundle.workdir) if b.run_id != bundle.run_id]
    return build_graph(bundles, verify=verify, allow_simulated=allow_simulated, policy=policy)


def build_graph(
    bundles: Sequence[RunBundle],
    *,
    verify: bool = True,
    allow_simulated: bool = False,
    policy: Policy | None = None,
) -> nx.DiGraph:
    """One graph over `bundles` (see the module docstring for nodes, edges and attributes)."""
    graph = nx.DiGraph()
    graph.graph["runs"] = {}
    graph.graph["verified"] = verify
    pending: list[tuple[str, str, dict[str, Any]]] = []
    for bundle in bundles:
        if bundle.run_id in graph.graph["runs"]:
            continue
        report = (
            verify_run(bundle, allow_simulated=allow_simulated, check_files=False, policy=policy)
            if verify
            else None
        )
        pending += _add_run(graph, bundle, report)
    _link_inputs(graph, pending)
    return graph


def jobs_of(graph: nx.DiGraph, run_id: str | None = None) -> list[str]:
    """Job node ids (of one run, or all), in (run, log line) order."""
    found = [
        n
        for n, d in graph.nodes(data=True)
        if d.get("kind") == JOB and (run_id is None or d["run_id"] == run_id)
    ]
    return sorted(found, key=lambda n: (graph.nodes[n]["run_id"], graph.nodes[n]["line"]))


def producer_of(graph: nx.DiGraph, file: str, run_id: str | None = None) -> str | None:
    """The job that produced file node `file`: the newest succeeded producer, of `run_id`
    when given (else of any run, newest run first)."""
    producers = [
        p
        for p in graph.predecessors(file)
        if graph.nodes[p].get("kind") == JOB
        and (run_id is None or graph.nodes[p]["run_id"] == run_id)
    ]
    if not producers:
        return None
    best: str = max(
        producers,
        key=lambda p: (
            graph.nodes[p]["status"] == "succeeded",
            graph.nodes[p]["run_id"],
            graph.nodes[p]["line"],
        ),
    )
    return best


def job_dag(graph: nx.DiGraph, run_id: str) -> nx.DiGraph:
    """The jobs of one run only, an edge parent -> child where a child consumed a parent's output
    (attribute `files`: the names it consumed). Node attributes are the job nodes' own."""
    dag = nx.DiGraph()
    for job in jobs_of(graph, run_id):
        dag.add_node(job, **graph.nodes[job])
    for job in list(dag.nodes):
        for file in graph.predecessors(job):
            producer = graph.edges[file, job].get("producer")
            if producer in dag.nodes:
                if dag.has_edge(producer, job):
                    dag.edges[producer, job]["files"].append(graph.nodes[file]["name"])
                else:
                    dag.add_edge(producer, job, files=[graph.nodes[file]["name"]])
    return dag


# -- building -----------------------------------------------------------------------------------


def _add_run(
    graph: nx.DiGraph, bundle: RunBundle, report: Report | None
) -> list[tuple[str, str, dict[str, Any]]]:
    entries = read_entries(bundle.attestations_path, strict=False)
    sessions = [e for e in entries if isinstance(e, SessionOpen)]
    closes = [e for e in entries if isinstance(e, SessionClose)]
    close = closes[-1] if closes and entries and entries[-1] is closes[-1] else None
    per_line, run_errors = _problems(report)
    chain = _chain(bundle)
    tree_size = root = None
    try:
        checkpoint, _ = parse_signed_note(bundle.read_checkpoint())
        tree_size, root = checkpoint.size, checkpoint.root.hex()
    except (OSError, PoxError):  # read_checkpoint: BundleError
        pass
    graph.graph["runs"][bundle.run_id] = {
        "status": close.status if close else "incomplete",
        "ok": None if report is None else report.ok,
        "simulated": any(s.evidence.type == "sim-report" for s in sessions),
        "errors": run_errors,
        "tree_size": tree_size,
        "root": root,
        "workdir": str(bundle.workdir),
        "bundle": str(bundle.path),
        "backend": sessions[0].backend if sessions else None,
        "sources": [
            {"name": r.name, "sha256": r.sha256} for s in sessions for r in s.workflow_sources
        ],
        "config_sha256": sessions[0].config_sha256 if sessions else None,
        "config_overrides": sessions[0].config_overrides if sessions else None,
        "snakemake_version": sessions[0].snakemake_version if sessions else None,
        "pox_version": sessions[0].pox_version if sessions else None,
        "started": sessions[0].started if sessions else None,
        "finished": close.finished if close else None,
        "chain": chain,
    }
    txs_by_job = _chain_txs(chain, bundle)
    pending: list[tuple[str, str, dict[str, Any]]] = []
    for record in entries:
        if not isinstance(record, JobRecord):
            continue
        node = job_node(record.digest)
        problems = per_line.get(record.line_no, [])
        verified = None if report is None else (not problems and not run_errors)
        graph.add_node(
            node,
            **_job_attributes(record),
            verified=verified,
            problems=problems + (run_errors if report is not None else []),
            chain_txs=txs_by_job.get(record.digest, []),
        )
        for subject in record.subjects:
            out = file_node(subject.name, subject.sha256)
            _add_file(graph, subject.name, subject.sha256, subject.annotations)
            graph.add_edge(node, out, kind="output")
        for dep in record.dependencies_of_kind(KIND_INPUT):
            inp = file_node(dep.name, dep.sha256)
            _add_file(graph, dep.name, dep.sha256, dep.annotations)
            pending.append((inp, node, dict(dep.annotations)))
    return pending


def _link_inputs(graph: nx.DiGraph, pending: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """Input edges, each naming its producer: as the signed record says, else by digest."""
    by_envelope = {d["envelope"]: n for n, d in graph.nodes(data=True) if d.get("kind") == JOB}
    by_digest: dict[str, list[str]] = {}
    for node, data in graph.nodes(data=True):
        if data.get("kind") == FILE and data["sha256"]:
            by_digest.setdefault(data["sha256"], []).append(node)
    for file, consumer, recorded in pending:
        producer = None
        matched = None
        info = recorded.get("pox.producer")
        if isinstance(info, Mapping):
            producer = by_envelope.get(str(info.get("envelope")))
            matched = "recorded" if producer else "recorded-missing"
            directory = info.get("directory")
            if (
                producer is not None
                and directory is not None
                and not graph.has_edge(producer, file)
            ):
                graph.add_edge(producer, file, kind="in-directory", directory=directory)
        elif recorded.get("pox.origin") == "source":
            producer = _by_digest(graph, file, consumer, by_digest)
            matched = "digest" if producer else None
        graph.add_edge(file, consumer, kind="input", producer=producer, matched=matched)


def _by_digest(
    graph: nx.DiGraph, file: str, consumer: str, by_digest: Mapping[str, list[str]]
) -> str | None:
    """A raw input of one run that another run produced (same bytes, maybe another name)."""
    sha = graph.nodes[file]["sha256"]
    if not sha:
        return None
    run = graph.nodes[consumer]["run_id"]
    candidates = []
    for same in by_digest.get(sha, []):
        for producer in graph.predecessors(same):
            data = graph.nodes[producer]
            if data.get("kind") == JOB and data["run_id"] != run and data["status"] == "succeeded":
                candidates.append(producer)
    if not candidates:
        return None
    # the newest run older than the consumer's, else the newest
    older = [c for c in candidates if graph.nodes[c]["run_id"] < run]
    pick: str = max(
        older or candidates, key=lambda c: (graph.nodes[c]["run_id"], graph.nodes[c]["line"])
    )
    if not graph.has_edge(pick, file):
        graph.add_edge(pick, file, kind="same-digest")
    return pick


def _add_file(
    graph: nx.DiGraph, name: str, sha256: str | None, annotations: Mapping[str, Any]
) -> None:
    node = file_node(name, sha256)
    size = annotations.get("size_bytes")
    if node in graph:
        data = graph.nodes[node]
        if data["size_bytes"] is None and isinstance(size, int):
            data["size_bytes"] = size
        data["temp"] = data["temp"] or bool(annotations.get("pox.temp"))
        return
    graph.add_node(
        node,
        kind=FILE,
        name=name,
        sha256=sha256,
        size_bytes=size if isinstance(size, int) else None,
        directory=bool(annotations.get("pox.directory")),
        temp=bool(annotations.get("pox.temp")),
        cid=None,
    )


def _job_attributes(record: JobRecord) -> dict[str, Any]:
    st = record.statement
    build = st["predicate"]["buildDefinition"]
    external = build["externalParameters"]
    internal = build["internalParameters"]
    metadata = st["predicate"]["runDetails"]["metadata"]
    measurement = _MEASUREMENT.search(record.builder_id)
    wildcards = ",".join(f"{k}={v}" for k, v in record.wildcards.items())
    label = f"{record.rule}[{wildcards}]" if wildcards else record.rule
    if record.attempt > 1:
        label += f" attempt {record.attempt}"
    return {
        "kind": JOB,
        "run_id": record.run_id,
        "envelope": record.digest,
        "line": record.line_no,
        "jobid": record.jobid,
        "rule": record.rule,
        "attempt": record.attempt,
        "status": record.status,
        "exit_code": record.exit_code,
        "wildcards": dict(record.wildcards),
        "params": external.get("params", {}),
        "threads": external.get("threads"),
        "resources": external.get("resources", {}),
        "inputs": [
            {
                "name": d.name,
                "sha256": d.sha256,
                "origin": d.annotations.get("pox.origin"),
                "producer": d.annotations.get("pox.producer"),
            }
            for d in record.dependencies_of_kind(KIND_INPUT)
        ],
        "outputs": [
            {
                "name": s.name,
                "sha256": s.sha256,
                "size_bytes": s.annotations.get("size_bytes"),
                "directory": bool(s.annotations.get("pox.directory")),
                "temp": bool(s.annotations.get("pox.temp")),
            }
            for s in record.subjects
        ],
        "code": [
            {"name": d.name, "sha256": d.sha256, "command": d.annotations.get("command")}
            for d in record.dependencies_of_kind(KIND_CODE)
        ],
        "environment": [
            {"name": d.name, "sha256": d.sha256, "annotations": dict(d.annotations)}
            for d in record.dependencies_of_kind(KIND_ENVIRONMENT)
        ],
        "evidence_type": record.evidence.type,
        "simulated": record.evidence.type == "sim-report",
        "backend": internal.get("backend"),
        "builder_id": record.builder_id,
        "measurement": measurement.group(1) if measurement else None,
        "image_digest": record.binding.image_digest,
        "isolated": record.isolated,
        "isolation": record.isolation,
        "started": metadata.get("startedOn"),
        "finished": record.finished_on,
        "missing_outputs": list(record.missing_outputs),
        "label": label,
    }


def _problems(report: Report | None) -> tuple[dict[int, list[str]], list[str]]:
    """Errors of `verify_run` per log line, and those that concern the whole run."""
    per_line: dict[int, list[str]] = {}
    run_errors: list[str] = []
    if report is None:
        return per_line, run_errors
    for finding in report.errors:
        match = _LINE.match(finding.where)
        text = f"{finding.check}: {finding.message}"
        if match and ", job " in finding.where:
            per_line.setdefault(int(match.group(1)), []).append(text)
        else:
            run_errors.append(text)
    return per_line, run_errors


def _chain(bundle: RunBundle) -> dict[str, Any] | None:
    if not (bundle.path / "chain.json").exists():
        return None  # not anchored; and the chain modules import web3, which takes seconds
    try:
        return chain_summary(bundle)
    except PoxError:
        return None


def _chain_txs(
    chain: Mapping[str, Any] | None, bundle: RunBundle
) -> dict[str, list[dict[str, Any]]]:
    """Envelope digest -> the chain transactions that settled that job (journal, unsigned)."""
    if chain is None:
        return {}
    from pox_executor.chain.journal import load_journal

    try:
        journal = load_journal(bundle)
    except PoxError:
        return {}
    if journal is None:
        return {}
    by_task: dict[str, list[dict[str, Any]]] = {}
    by_deal: list[tuple[str, int, int, dict[str, Any]]] = []
    anchors = sorted(journal.anchors, key=lambda a: a.size)
    for action in journal.actions:
        if not action.tx_hash:
            continue
        tx = {"kind": action.kind, "tx_hash": action.tx_hash, "block": action.block}
        task = action.params.get("task")
        if isinstance(task, str):
            by_task.setdefault(task, []).append(tx)
        if action.kind == "finalize_batch":
            first, count = int(action.params["first"]), int(action.params["count"])
            by_deal.append((str(action.params["deal"]), first, count, tx))
    out: dict[str, list[dict[str, Any]]] = {}
    for record in journal.records:
        txs = list(by_task.get(record.task or "", []))
        for deal, first, count, tx in by_deal:
            if (
                record.deal == deal
                and record.idx is not None
                and first <= record.idx < first + count
            ):
                txs.append(tx)
        anchor = next((a for a in anchors if a.size > record.index), None)
        if anchor is not None:
            txs.append({"kind": "anchor", "tx_hash": anchor.tx_hash, "block": anchor.block})
        if txs:
            out[record.digest] = txs
    return out


def workdir_of(graph: nx.DiGraph, run_id: str) -> Path:
    return Path(graph.graph["runs"][run_id]["workdir"])
