"""`pox html`: one self-contained HTML page to explore a run (the DAG, a search, per-job panels).

Owns turning a run and its verification report into a page: the job DAG comes from the shared
provenance graph (`audit/graph.py`, which reads records only through `provenance/records.py`),
the verdict and per-record problems from the `Report` of `audit/verify.py` the caller made, the
layout from `audit/layout.py`. The page embeds everything it shows (data as JSON, the explorer's
script and style from `html_assets/`) and a Content-Security-Policy that allows no network
request at all: opened years later, offline, it shows the same thing.

Untrusted text (file names, commands, params) reaches the page only as JSON inside a
`<script type="application/json">` element with every `<`, `>` and `&` escaped, and the script
puts it into the DOM with `textContent`, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx

from pox_executor.audit.findings import Report
from pox_executor.audit.graph import job_dag, run_graph
from pox_executor.audit.layout import NODE_HEIGHT, NODE_WIDTH, layered_layout
from pox_executor.audit.verify import SIMULATED_SUMMARY, STATUS_INCOMPLETE
from pox_executor.errors import UsageError
from pox_executor.primitives import sha256_bytes, write_atomically
from pox_executor.provenance.bundle import RunBundle

__all__ = ["FORMAT", "page_data", "render_page", "write_page"]

FORMAT = "pox-html/v1"
MAX_SOURCE_BYTES = 64 * 1024  # code files larger than this are named with their digest only
MAX_FINDINGS = 1000  # findings listed in the page (the count says how many there were)
_PLACEHOLDER = re.compile(r"\{\{(CSP|TITLE|STYLE|SCRIPT|DATA)\}\}")


def page_data(bundle: RunBundle, report: Report) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (also useful to tests and other tools)."""
    graph = run_graph(bundle, verify=False, with_other_runs=False)
    run = graph.graph["runs"][bundle.run_id]
    dag = job_dag(graph, bundle.run_id)
    order = _topological(dag)
    layout = layered_layout(dag, order)
    index = {node: i for i, node in enumerate(order)}
    files: dict[tuple[str, str | None], int] = {}
    file_rows: list[list[Any]] = []

    def file_id(name: str, sha256: str | None, size: Any = None) -> int:
        key = (name, sha256)
        if key not in files:
            files[key] = len(file_rows)
            file_rows.append([name, sha256, size if isinstance(size, int) else None])
        elif isinstance(size, int) and file_rows[files[key]][2] is None:
            file_rows[files[key]][2] = size
        return files[key]

    per_line = _findings_per_line(report)
    sources: dict[str, str] = {}
    links = _explorer_links(run.get("chain"))
    jobs = []
    for node in order:
        job = dag.nodes[node]
        x, y = layout.positions[node]
        producers = {}
        for inp in job["inputs"]:
            info = inp.get("producer")
            envelope = info.get("envelope") if isinstance(info, Mapping) else None
            producer = f"job:{envelope}"
            producers[inp["name"]] = index.get(producer, -1)
        findings = per_line.get(job["line"], [])
        jobs.append(
            {
                "line": job["line"],
                "jobid": job["jobid"],
                "rule": job["rule"],
                "label": job["label"],
                "attempt": job["attempt"],
                "status": job["status"],
                "exit_code": job["exit_code"],
                "wildcards": job["wildcards"],
                "params": job["params"],
                "threads": job["threads"],
                "resources": job["resources"],
                "inputs": [
                    [file_id(i["name"], i["sha256"]), producers[i["name"]], i.get("origin")]
                    for i in job["inputs"]
                ],
                "outputs": [
                    file_id(o["name"], o["sha256"], o.get("size_bytes")) for o in job["outputs"]
                ],
                "missing_outputs": job["missing_outputs"],
                "code": [
                    {
                        "name": c["name"],
                        "sha256": c["sha256"],
                        "command": c.get("command"),
                        "source": _source(bundle.workdir, c["name"], c["sha256"], sources),
                    }
                    for c in job["code"]
                ],
                "environment": job["environment"],
                "evidence": job["evidence_type"],
                "simulated": job["simulated"],
                "backend": job["backend"],
                "builder": job["builder_id"],
                "measurement": job["measurement"],
                "image": job["image_digest"],
                "isolated": job["isolated"],
                "isolation": job["isolation"],
                "started": job["started"],
                "finished": job["finished"],
                "envelope": job["envelope"],
                "findings": findings,
                "verified": not any(f["level"] == "error" for f in findings),
                "chain": [dict(tx, link=links.get(tx["tx_hash"])) for tx in job["chain_txs"]],
                "x": x,
                "y": y,
            }
        )
    edges = [[index[a], index[b]] for a, b in dag.edges]
    return {
        "format": FORMAT,
        "run": {
            "run_id": bundle.run_id,
            "status": run["status"],
            "started": run["started"],
            "finished": run["finished"],
            "backend": run["backend"],
            "snakemake_version": run["snakemake_version"],
            "pox_version": run["pox_version"],
            "tree_size": run["tree_size"],
            "root": run["root"],
            "sources": run["sources"],
            "chain": run["chain"],
            "workdir": run["workdir"],
        },
        "verification": _verification(report),
        "files": file_rows,
        "jobs": jobs,
        "edges": edges,
        "layout": {
            "layers": layout.layers,
            "width": layout.width,
            "height": layout.height,
            "node_width": NODE_WIDTH,
            "node_height": NODE_HEIGHT,
        },
        "sources": sources,
    }


def render_page(data: Mapping[str, Any]) -> str:
    """The page: template + style + script + data, under a CSP that forbids every fetch."""
    assets = resources.files("pox_executor.audit") / "html_assets"
    template = (assets / "explorer.html").read_text(encoding="utf-8")
    style = (assets / "explorer.css").read_text(encoding="utf-8")
    script = (assets / "explorer.js").read_text(encoding="utf-8")
    payload = _script_safe_json(data)
    policy = (
        "default-src 'none'; "
        f"style-src {_csp_hash(style)}; "
        f"script-src {_csp_hash(script)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    parts = {
        "CSP": policy,
        "TITLE": _text(f"PoX run {data['run']['run_id']}"),
        "STYLE": style,
        "SCRIPT": script,
        "DATA": payload,
    }
    # one pass, so that text inside one part is never taken for another part's placeholder
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], template)


def write_page(bundle: RunBundle, report: Report, output: Path, *, force: bool = False) -> Path:
    """Write the page of `bundle` to `output` (atomically); an existing file is kept unless
    `force`. UsageError names the path when it cannot be written."""
    if output.is_dir():
        raise UsageError(f"{output}: is a directory; give a file name with -o")
    if output.exists() and not force:
        raise UsageError(f"{output} already exists; choose another path with -o or pass --force")
    if not output.parent.is_dir():
        raise UsageError(f"{output.parent}: no such directory")
    page = render_page(page_data(bundle, report))
    try:
        write_atomically(output, page.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{output}: cannot write ({exc.strerror})") from exc
    return output


# -- parts --------------------------------------------------------------------------------------


def _topological(dag: nx.DiGraph) -> list[str]:
    """Jobs in a topological order that keeps log order where it can."""
    line = {n: dag.nodes[n]["line"] for n in dag.nodes}
    try:
        return list(nx.lexicographical_topological_sort(dag, key=lambda n: line[n]))
    except nx.NetworkXUnfeasible:  # a cycle cannot come from a verified log; draw it anyway
        return sorted(dag.nodes, key=lambda n: line[n])


def _findings_per_line(report: Report) -> dict[int, list[dict[str, str]]]:
    """Findings about one job record, by its log line (their `where` is the record's)."""
    out: dict[int, list[dict[str, str]]] = {}
    for finding in report.findings:
        head, _, rest = finding.where.partition(",")
        if head.startswith("line ") and rest.startswith(" job ") and head[5:].isdigit():
            out.setdefault(int(head[5:]), []).append(finding.to_json())
    return out


def _verification(report: Report) -> dict[str, Any]:
    """The verdict as `pox verify` prints it, its facts, and the findings not about one job."""
    facts = report.facts
    incomplete = facts.get("status") == STATUS_INCOMPLETE
    if not report.ok:
        verdict = f"FAILED ({len(report.errors)} errors)"
    elif incomplete:
        verdict = "OK so far, but INCOMPLETE (the log has no signed closing)"
    else:
        verdict = "OK"
    general = [f.to_json() for f in report.findings if not _about_one_job(f.where)]
    counts = {level: 0 for level in ("error", "warning", "note")}
    for finding in report.findings:
        counts[finding.level] = counts.get(finding.level, 0) + 1
    return {
        "ok": report.ok,
        "verdict": verdict,
        "subject": report.subject,
        "simulated": bool(facts.get("simulated")),
        "simulated_text": SIMULATED_SUMMARY,
        "facts": {k: v for k, v in facts.items() if isinstance(v, str | int | float | bool)},
        "counts": counts,
        "findings": general[:MAX_FINDINGS],
        "findings_total": len(general),
    }


def _about_one_job(where: str) -> bool:
    head, _, rest = where.partition(",")
    return head.startswith("line ") and rest.startswith(" job ")


def _source(workdir: Path, name: str, sha256: str | None, sources: dict[str, str]) -> str | None:
    """The digest of a code file whose bytes on disk still match the record (its text is put
    in `sources` once), or None: the page shows recorded code, never a changed file."""
    if not sha256 or name.startswith(("pox:", "external:")):
        return None
    if sha256 in sources:
        return sha256
    path = workdir / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        if not Path(f"/proc/self/fd/{handle.fileno()}").resolve().is_relative_to(workdir.resolve()):
            return None
        data = handle.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES or sha256_bytes(data) != sha256:
        return None
    try:
        sources[sha256] = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return sha256


def _explorer_links(chain: Mapping[str, Any] | None) -> dict[str, str]:
    if not chain:
        return {}
    return {
        str(tx["tx_hash"]): str(tx["link"])
        for tx in chain.get("transactions", [])
        if tx.get("tx_hash") and tx.get("link")
    }


def _script_safe_json(data: Mapping[str, Any]) -> str:
    """JSON that cannot end its <script> element or open a comment inside it."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _csp_hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    return f"'sha256-{digest}'"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
