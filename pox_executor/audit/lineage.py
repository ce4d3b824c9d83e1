"""`pox lineage` and `pox dag`: walk the provenance graph (`audit/graph.py`) and render it.

`lineage` follows a file up to the raw inputs it was made from (each hop through the producer
the consumer's signed record names, into earlier runs too) or down to everything made from it.
`render_*` turn a lineage or a run's job DAG into text, JSON, Graphviz DOT or Mermaid. Each job
shown carries its envelope digest and whether `verify_run` found it sound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from pox_executor.audit.graph import FILE, JOB, file_node, job_dag, jobs_of, producer_of
from pox_executor.errors import PoxError, UsageError
from pox_executor.primitives import sha256_file
from pox_executor.provenance.names import record_name

UP = "up"
DOWN = "down"
_MAX_INDENT = 30  # deeper hops print their depth instead of more indentation


@dataclass
class Lineage:
    """The part of the graph a file depends on (up) or that depends on it (down)."""

    start: str  # file node
    direction: str
    graph: nx.DiGraph  # the sub-graph walked, with the full graph's attributes
    notes: list[str] = field(default_factory=list)

    def jobs(self) -> list[str]:
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == JOB]


def resolve_file(
    graph: nx.DiGraph, path: str, *, workdir: Path, run_id: str | None
) -> tuple[str, list[str]]:
    """The file node for `path` (relative to `workdir`, or absolute inside it): the version whose
    bytes are on disk when it exists, else the newest recorded one (of `run_id` if given)."""
    notes: list[str] = []
    full = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    try:
        try:
            name = record_name(full.resolve().relative_to(workdir.resolve()), workdir.resolve())
        except ValueError:
            name = record_name(path, workdir)
    except (ValueError, PoxError) as exc:
        raise UsageError(f"{path}: not a file name a run can record ({exc})") from exc
    versions = [n for n, d in graph.nodes(data=True) if d["kind"] == FILE and d["name"] == name]
    if not versions:
        raise UsageError(
            f"{path}: no recorded job read or wrote {name!r}",
            hint="`pox show` lists each run's jobs and outputs",
        )
    if full.is_file():
        on_disk = file_node(name, sha256_file(full))
        if on_disk in versions:
            return on_disk, notes
        notes.append(f"{name} on disk matches no recorded version: showing the newest recorded one")
    produced = [(producer_of(graph, v, run_id), v) for v in versions]
    produced = [(p, v) for p, v in produced if p is not None]
    if produced:
        _, best = max(
            produced, key=lambda pv: (graph.nodes[pv[0]]["run_id"], graph.nodes[pv[0]]["line"])
        )
        return best, notes
    if run_id is not None:
        notes.append(f"{name} was not produced in run {run_id}: it is a raw input there")
    return versions[0], notes


def lineage(
    graph: nx.DiGraph, start: str, *, direction: str = UP, run_id: str | None = None
) -> Lineage:
    """Every job and file `start` depends on (`up`) or that depends on it (`down`).

    Up, each input leads to the producer its consumer's signed record names (or, for a raw
    input, the job of another run found by digest), not to any job that wrote the same bytes.
    """
    if direction not in (UP, DOWN):
        raise UsageError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
    sub = nx.DiGraph()
    sub.add_node(start, **graph.nodes[start])
    first = producer_of(graph, start, run_id) if direction == UP else None
    stack: list[tuple[str, str | None]] = [(start, first)]
    while stack:
        node, producer = stack.pop()
        for nxt, a, b, hint in _steps(graph, node, direction, producer):
            fresh = nxt not in sub
            if fresh:
                sub.add_node(nxt, **graph.nodes[nxt])
            known = sub.has_edge(a, b)
            sub.add_edge(a, b, **graph.edges[a, b])
            if fresh or (hint is not None and not known):
                stack.append((nxt, hint))
    return Lineage(start, direction, sub)


def _steps(
    graph: nx.DiGraph, node: str, direction: str, producer: str | None
) -> Iterator[tuple[str, str, str, str | None]]:
    """(next node, edge source, edge target, producer hint for the next node)."""
    kind = graph.nodes[node]["kind"]
    if direction == UP and kind == FILE:
        if producer is not None and graph.has_edge(producer, node):
            yield producer, producer, node, None
    elif direction == UP:
        for file in graph.predecessors(node):
            yield file, file, node, graph.edges[file, node].get("producer")
    else:
        for nxt in graph.successors(node):
            yield nxt, node, nxt, None


# -- rendering ----------------------------------------------------------------------------------


def verdict(data: dict[str, Any]) -> str:
    if data.get("verified") is None:
        return "not checked"
    if data["verified"]:
        return "verified" + (" (SIMULATED evidence accepted)" if data.get("simulated") else "")
    first = data["problems"][0] if data["problems"] else "unknown"
    if first.startswith("simulated:"):
        first = "simulated evidence, which strict verification rejects; see --allow-simulated"
    return f"NOT verified ({first})"


def render_text(lin: Lineage) -> str:
    g = lin.graph
    arrow = "<-" if lin.direction == UP else "->"
    lines = [f"{_file_text(g.nodes[lin.start])}   ({lin.direction}stream lineage)"]
    seen: set[str] = set()
    # depth-first, iteratively: a lineage may be thousands of hops deep
    stack: list[tuple[str, int]] = [(n, 1) for n in reversed(_ordered(g, lin.start, lin))]
    while stack:
        node, depth = stack.pop()
        data = g.nodes[node]
        pad = "  " * min(depth, _MAX_INDENT) + (f"[{depth}] " if depth > _MAX_INDENT else "")
        repeat = node in seen
        if data["kind"] == JOB:
            text = (
                f"{pad}{arrow} job {data['label']}  run {data['run_id']}  line {data['line']}"
                f"  envelope {data['envelope'][:16]}  {verdict(data)}"
            )
        else:
            text = f"{pad}{arrow} {_file_text(data)}"
        lines.append(text + ("  (see above)" if repeat and any(_next(g, node, lin)) else ""))
        if not repeat:
            seen.add(node)
            stack += [(n, depth + 1) for n in reversed(_ordered(g, node, lin))]

    jobs = lin.jobs()
    unverified = sum(1 for j in jobs if g.nodes[j].get("verified") is False)
    raw = [n for n, d in g.nodes(data=True) if d["kind"] == FILE and not _has_producer(g, n)]
    summary = f"{len(jobs)} jobs, {g.number_of_nodes() - len(jobs)} files"
    if lin.direction == UP:
        summary += f", {len(raw)} raw inputs"
    summary += f"; {unverified} jobs NOT verified" if unverified else "; every job verified"
    runs = sorted({g.nodes[j]["run_id"] for j in jobs})
    lines += [*lin.notes, summary + f"; runs: {', '.join(runs) or '-'}"]
    return "\n".join(lines)


def _ordered(g: nx.DiGraph, node: str, lin: Lineage) -> list[str]:
    nexts = list(_next(g, node, lin))
    return sorted(nexts, key=lambda n: (g.nodes[n].get("name") or g.nodes[n].get("label", ""), n))


def _next(g: nx.DiGraph, node: str, lin: Lineage) -> Iterator[str]:
    return iter(g.predecessors(node) if lin.direction == UP else g.successors(node))


def _has_producer(g: nx.DiGraph, node: str) -> bool:
    return any(g.nodes[p]["kind"] == JOB for p in g.predecessors(node))


def _file_text(data: dict[str, Any]) -> str:
    sha = data["sha256"][:16] if data["sha256"] else "no digest"
    return f"{data['name']}  sha256 {sha}"


def to_json(g: nx.DiGraph, **top: Any) -> dict[str, Any]:
    """Nodes (with their attributes) and edges, as plain JSON."""
    nodes = [{"id": n, **_plain(d)} for n, d in g.nodes(data=True)]
    edges = [{"source": a, "target": b, **_plain(d)} for a, b, d in g.edges(data=True)]
    return {**top, "nodes": nodes, "edges": edges}


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def render_lineage_json(lin: Lineage) -> str:
    doc = to_json(lin.graph, start=lin.start, direction=lin.direction, notes=lin.notes)
    return json.dumps(doc, indent=2, sort_keys=True)


def _dot_id(node: str) -> str:
    return json.dumps(node)


def _dot_label(data: dict[str, Any]) -> str:
    if data["kind"] != JOB:
        return json.dumps(data["name"])
    state = {None: "not checked", True: "verified", False: "NOT VERIFIED"}[data.get("verified")]
    return json.dumps(f"{data['label']}\n{data['envelope'][:12]}\n{state}")


def render_dot(g: nx.DiGraph, name: str = "lineage") -> str:
    """Graphviz DOT: jobs as boxes (red when not verified), files as notes."""
    out = [f"digraph {json.dumps(name)} {{", "  rankdir=LR;"]
    for node, data in g.nodes(data=True):
        if data["kind"] == JOB:
            color = "darkgreen" if data.get("verified") else "red"
            out.append(f"  {_dot_id(node)} [shape=box, color={color}, label={_dot_label(data)}];")
        else:
            out.append(f"  {_dot_id(node)} [shape=note, label={_dot_label(data)}];")
    for a, b in g.edges():
        out.append(f"  {_dot_id(a)} -> {_dot_id(b)};")
    out.append("}")
    return "\n".join(out) + "\n"


def render_mermaid(dag: nx.DiGraph) -> str:
    """A Mermaid flowchart of a job DAG (node ids j<line>)."""
    ids = {n: f"j{i}" for i, n in enumerate(dag.nodes)}
    out = ["flowchart LR"]
    for node, data in dag.nodes(data=True):
        label = f"{data['label']} #{data['line']}".replace('"', "'")
        mark = "" if data.get("verified") else " (NOT verified)"
        out.append(f'  {ids[node]}["{label}{mark}"]')
    for a, b in dag.edges():
        out.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(out) + "\n"


def run_dag(graph: nx.DiGraph, run_id: str) -> nx.DiGraph:
    if not jobs_of(graph, run_id):
        raise UsageError(f"run {run_id} holds no job records")
    return job_dag(graph, run_id)
