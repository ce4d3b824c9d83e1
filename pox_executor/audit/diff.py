"""`pox diff RUN_A RUN_B`: job by job, what changed between two runs and which job diverged first.

Owns comparing two runs' records (from the graph of `audit/graph.py`) and their output files.
Jobs are matched by rule and wildcards (job ids are not stable across runs), using each job's
newest attempt. For every matched job the causes are named: `code` (shell command, script),
`params` (params, threads, resources), `inputs` (input digests), `environment` (image, conda,
container); a job with none of them whose outputs still differ changed `output bytes only`.

Outputs are compared in tiers: SHA-256 of the recorded bytes; when those differ and both files
are on disk with their recorded digest, format-aware (`compare_files`): BAM/CRAM by header
(without @PG/@CO lines) and reads, VCF/BCF by header (without date and command lines) and
records, other gzip by content (pysam reads the genomic formats); then a text diff excerpt.

A job *diverged first* when it changed for a reason of its own (code, params, environment, or
output bytes from unchanged inputs); its descendants that changed only through their inputs
are classified by what happened to their outputs. Exit codes: 0 identical, 1 different,
2 unusable input.
"""

from __future__ import annotations

import difflib
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from pox_executor.audit.graph import job_dag, jobs_of
from pox_executor.errors import UsageError, VerificationError
from pox_executor.primitives import sha256_file
from pox_executor.provenance.names import check_record_name, is_external

CAUSES = ("code", "params", "inputs", "environment")
_EXCERPT_LINES = 12
_MAX_TEXT_BYTES = 8 * 1024 * 1024
JobKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class FileDiff:
    name: str
    status: str  # identical | equivalent | different | only-in-a | only-in-b
    tier: str  # sha256 | bam | vcf | gzip | text | binary | unavailable
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class JobDiff:
    key: JobKey
    label: str
    a: str | None  # job node ids
    b: str | None
    causes: dict[str, list[str]] = field(default_factory=dict)
    files: list[FileDiff] = field(default_factory=list)
    first: bool = False
    reused: bool = False  # only in A, and B consumed its outputs instead of re-running it

    @property
    def outputs_differ(self) -> bool:
        return any(f.status != "identical" for f in self.files)

    @property
    def outputs_equivalent(self) -> bool:
        return all(f.status in ("identical", "equivalent") for f in self.files)

    @property
    def classification(self) -> str:
        if self.a is None:
            return "only in B"
        if self.b is None:
            return "not re-run in B (B used A's outputs)" if self.reused else "only in A"
        own = [c for c in self.causes if c != "inputs"]
        if own:
            return "changed: " + ", ".join(own + (["inputs"] if "inputs" in self.causes else []))
        if "inputs" in self.causes:
            if not self.outputs_differ:
                return "inputs changed, outputs identical"
            if self.outputs_equivalent:
                return "inputs changed, outputs equivalent (format-aware)"
            return "inputs changed, outputs different"
        if not self.outputs_differ:
            return "identical"
        if self.outputs_equivalent:
            return "output bytes only, equivalent (format-aware)"
        return "output bytes only"

    @property
    def identical(self) -> bool:
        return self.reused or self.classification in (
            "identical",
            "output bytes only, equivalent (format-aware)",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.key[0],
            "wildcards": dict(self.key[1]),
            "label": self.label,
            "classification": self.classification,
            "diverged_first": self.first,
            "causes": self.causes,
            "outputs": [f.to_json() for f in self.files],
        }


@dataclass
class RunDiff:
    run_a: str
    run_b: str
    jobs: list[JobDiff]
    sources: list[str]  # workflow sources that differ
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.sources and all(j.identical for j in self.jobs)

    @property
    def first(self) -> list[JobDiff]:
        return [j for j in self.jobs if j.first]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "identical": self.identical,
            "diverged_first": [j.label for j in self.first],
            "sources": self.sources,
            "notes": self.notes,
            "jobs": [j.to_json() for j in self.jobs],
        }


def diff_runs(graph: nx.DiGraph, run_a: str, run_b: str) -> RunDiff:
    """Compare run B with run A (both in `graph`), job by job, in B's log order."""
    runs = graph.graph["runs"]
    for run in (run_a, run_b):
        if run not in runs:
            raise UsageError(f"run {run} is not in the graph")
    jobs_a, jobs_b = _newest(graph, run_a), _newest(graph, run_b)
    order = list(jobs_b) + [k for k in jobs_a if k not in jobs_b]
    workdirs = (Path(runs[run_a]["workdir"]), Path(runs[run_b]["workdir"]))
    diffs: dict[JobKey, JobDiff] = {}
    for key in order:
        a, b = jobs_a.get(key), jobs_b.get(key)
        label = graph.nodes[b or a]["label"] if (b or a) else str(key)
        diff = JobDiff(key, label, a, b)
        if a is not None and b is not None:
            diff.causes = _causes(graph.nodes[a], graph.nodes[b])
            diff.files = _outputs(graph.nodes[a], graph.nodes[b], workdirs)
        diffs[key] = diff
    _mark_reused(graph, diffs, run_a, run_b)
    _mark_first(diffs)
    sources = _source_changes(runs[run_a]["sources"], runs[run_b]["sources"])
    notes = []
    if runs[run_a]["config_sha256"] != runs[run_b]["config_sha256"]:
        notes.append("the workflow configuration differs (config digests in the session openings)")
    overrides_a, overrides_b = (runs[r].get("config_overrides") for r in (run_a, run_b))
    if overrides_a is not None and overrides_b is not None and overrides_a != overrides_b:
        keys = sorted(
            k for k in {*overrides_a, *overrides_b} if overrides_a.get(k) != overrides_b.get(k)
        )
        notes.append(f"the --config overrides differ: {', '.join(keys)}")
    ordered = sorted(diffs.values(), key=lambda d: (not d.first, order.index(d.key)))
    return RunDiff(run_a, run_b, ordered, sources, notes)


def _key(data: Mapping[str, Any]) -> JobKey:
    return data["rule"], tuple(sorted((str(k), str(v)) for k, v in data["wildcards"].items()))


def _newest(graph: nx.DiGraph, run: str) -> dict[JobKey, str]:
    newest: dict[JobKey, str] = {}
    for job in jobs_of(graph, run):  # log order: a later attempt replaces an earlier one
        newest[_key(graph.nodes[job])] = job
    return newest


def _causes(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, list[str]]:
    causes: dict[str, list[str]] = {}
    params = [
        k
        for k in sorted(set(a["params"]) | set(b["params"]))
        if a["params"].get(k) != b["params"].get(k)
    ]
    # a prepared `script:` file is Snakemake's preamble (the job's inputs, outputs, params...
    # pickled) in front of the script, whose own file is a code entry of its own: it changes
    # with every input, so it names no cause the other entries do not name already
    code = [
        c
        for c in _changed(_by_name(a["code"]), _by_name(b["code"]))
        if not c.startswith("pox:prepared-script/")
    ]
    if "pox:shell-command" in code and _explained_by_params(a, b, params):
        code.remove("pox:shell-command")
    if code:
        causes["code"] = code
    if a["threads"] != b["threads"]:
        params.append("threads")
    params += [
        f"resources.{k}"
        for k in sorted(set(a["resources"]) | set(b["resources"]))
        if a["resources"].get(k) != b["resources"].get(k)
    ]
    if params:
        causes["params"] = params
    inputs = _changed(_by_name(a["inputs"]), _by_name(b["inputs"]))
    if inputs:
        causes["inputs"] = inputs
    env = _changed(_by_name(a["environment"]), _by_name(b["environment"]))
    if env:
        causes["environment"] = env
    return causes


def _explained_by_params(a: Mapping[str, Any], b: Mapping[str, Any], params: list[str]) -> bool:
    """Whether the formatted shell commands differ only where changed params' values appear."""
    command_a = next((c["command"] for c in a["code"] if c["name"] == "pox:shell-command"), None)
    command_b = next((c["command"] for c in b["code"] if c["name"] == "pox:shell-command"), None)
    if not isinstance(command_a, str) or not isinstance(command_b, str) or not params:
        return False
    for name in params:
        old, new = a["params"].get(name), b["params"].get(name)
        if isinstance(old, str | int | float) and isinstance(new, str | int | float):
            command_a = command_a.replace(str(old), str(new))
    return command_a == command_b


def _by_name(items: list[Mapping[str, Any]]) -> dict[str, str | None]:
    return {str(i["name"]): i.get("sha256") or json.dumps(i.get("command")) for i in items}


def _changed(a: Mapping[str, str | None], b: Mapping[str, str | None]) -> list[str]:
    return [n for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]


def _source_changes(a: list[Mapping[str, Any]], b: list[Mapping[str, Any]]) -> list[str]:
    return _changed({s["name"]: s["sha256"] for s in a}, {s["name"]: s["sha256"] for s in b})


def _mark_reused(
    graph: nx.DiGraph, diffs: Mapping[JobKey, JobDiff], run_a: str, run_b: str
) -> None:
    """Jobs of A that B did not re-run because B consumed their outputs (an incremental re-run
    in a copy of A's directory): the jobs B's records cite as producers, and their ancestors."""
    cited = {
        edge["producer"]
        for job in jobs_of(graph, run_b)
        for _, _, edge in graph.in_edges(job, data=True)
        if edge.get("producer") and graph.nodes[edge["producer"]]["run_id"] == run_a
    }
    if not cited:
        return
    dag = job_dag(graph, run_a)
    reused = set(cited)
    for job in cited:
        if job in dag:
            reused |= nx.ancestors(dag, job)
    for diff in diffs.values():
        if diff.b is None and diff.a in reused:
            diff.reused = True


def _mark_first(diffs: Mapping[JobKey, JobDiff]) -> None:
    """A job diverged first when it changed by itself, not only through what it consumed."""
    for diff in diffs.values():
        if diff.a is None or diff.b is None:
            continue
        own = any(c != "inputs" for c in diff.causes)
        nondeterministic = not diff.causes and not diff.outputs_equivalent
        diff.first = own or nondeterministic


def _outputs(
    a: Mapping[str, Any], b: Mapping[str, Any], workdirs: tuple[Path, Path]
) -> list[FileDiff]:
    # a job without outputs names its captured log, whose path differs per run: not an output
    out_a = {o["name"]: o for o in a["outputs"] if not o["name"].startswith(".pox/")}
    out_b = {o["name"]: o for o in b["outputs"] if not o["name"].startswith(".pox/")}
    files = []
    for name in sorted(set(out_a) | set(out_b)):
        if name not in out_b:
            files.append(FileDiff(name, "only-in-a", "sha256"))
        elif name not in out_a:
            files.append(FileDiff(name, "only-in-b", "sha256"))
        elif out_a[name]["sha256"] == out_b[name]["sha256"]:
            files.append(FileDiff(name, "identical", "sha256"))
        elif out_a[name].get("directory") or out_b[name].get("directory"):
            files.append(FileDiff(name, "different", "sha256", "directory manifests differ"))
        else:
            files.append(
                _compare_recorded(name, out_a[name]["sha256"], out_b[name]["sha256"], workdirs)
            )
    return files


def _compare_recorded(name: str, sha_a: str, sha_b: str, workdirs: tuple[Path, Path]) -> FileDiff:
    paths = []
    for workdir, sha in zip(workdirs, (sha_a, sha_b), strict=True):
        path = workdir / name
        if not _inside_name(name) or not path.is_file() or sha256_file(path) != sha:
            where = "A" if workdir is workdirs[0] else "B"
            return FileDiff(
                name, "different", "unavailable", f"run {where}'s bytes are no longer on disk"
            )
        paths.append(path)
    return compare_files(name, paths[0], paths[1])


def _inside_name(name: str) -> bool:
    """A recorded name of a file inside the working directory: the runs are not verified here,
    and a name such as `../x` must not make the diff read (and show) a file outside it."""
    try:
        check_record_name(name)
    except VerificationError:
        return False
    return not is_external(name)


def compare_files(name: str, a: Path, b: Path) -> FileDiff:
    """Tiers 2 and 3 for two files whose SHA-256 differ: format-aware, then a text excerpt."""
    lower = name.lower()
    try:
        if lower.endswith((".bam", ".cram")):
            return _verdict(name, "bam", _alignment_lines(a), _alignment_lines(b))
        if lower.endswith((".vcf", ".vcf.gz", ".bcf")):
            return _verdict(name, "vcf", _variant_lines(a), _variant_lines(b))
    except (OSError, ValueError) as exc:
        return FileDiff(
            name, "different", "unavailable", f"could not read as {lower.rsplit('.', 1)[-1]}: {exc}"
        )
    data_a, data_b = _content(a), _content(b)
    tier = "gzip" if lower.endswith(".gz") else "text"
    if data_a == data_b:
        return FileDiff(name, "equivalent", tier, "same content once decompressed")
    try:
        if b"\x00" in data_a or b"\x00" in data_b:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL byte: not text")
        text_a, text_b = data_a.decode("utf-8"), data_b.decode("utf-8")
    except UnicodeDecodeError:
        at = next(
            (i for i, (x, y) in enumerate(zip(data_a, data_b, strict=False)) if x != y),
            min(len(data_a), len(data_b)),
        )
        return FileDiff(name, "different", "binary", f"binary content differs from byte {at}")
    return FileDiff(name, "different", tier, _excerpt(text_a.splitlines(), text_b.splitlines()))


def _content(path: Path) -> bytes:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rb") as handle:
            return handle.read(_MAX_TEXT_BYTES)
    with open(path, "rb") as handle:
        return handle.read(_MAX_TEXT_BYTES)


def _verdict(name: str, tier: str, a: list[str], b: list[str]) -> FileDiff:
    if a == b:
        what = "reads" if tier == "bam" else "records"
        return FileDiff(
            name, "equivalent", tier, f"same header and {what} (ignoring volatile header lines)"
        )
    return FileDiff(name, "different", tier, _excerpt(a, b))


def _alignment_lines(path: Path) -> list[str]:
    import pysam

    with pysam.AlignmentFile(
        str(path), "rb" if path.suffix == ".bam" else "rc", check_sq=False
    ) as handle:
        header = [
            line for line in str(handle.header).splitlines() if not line.startswith(("@PG", "@CO"))
        ]
        return header + [read.to_string() for read in handle.fetch(until_eof=True)]


_VOLATILE_VCF = ("##fileDate", "##filedate")


def _variant_lines(path: Path) -> list[str]:
    import pysam

    pysam.set_verbosity(0)  # htslib's header sanity warnings are not ours to print
    with pysam.VariantFile(str(path)) as handle:
        header = [
            line
            for line in str(handle.header).splitlines()
            if not line.startswith(_VOLATILE_VCF) and not _command_line(line)
        ]
        return header + [str(record).rstrip("\n") for record in handle.fetch()]


def _command_line(line: str) -> bool:
    """`##bcftools_callCommand=...`, `##commandline=...`, `##GATKCommandLine=...`."""
    key = line[2:].split("=", 1)[0].lower() if line.startswith("##") else ""
    return key.endswith("command") or key.endswith("commandline") or key == "commandline"


def _excerpt(a: list[str], b: list[str]) -> str:
    lines = list(difflib.unified_diff(a, b, "A", "B", n=1, lineterm=""))
    shown = lines[:_EXCERPT_LINES]
    more = f"\n... {len(lines) - len(shown)} more diff lines" if len(lines) > len(shown) else ""
    return "\n".join(shown) + more


def render_text(diff: RunDiff) -> str:
    out = [f"A {diff.run_a}", f"B {diff.run_b}"]
    if diff.sources:
        out.append(f"workflow sources that differ: {', '.join(diff.sources)}")
    out += diff.notes
    first = diff.first
    if first:
        out.append("diverged first: " + ", ".join(f"{j.label}" for j in first))
    for job in diff.jobs:
        mark = "*" if job.first else " "
        out.append(f"{mark} {job.label:40} {job.classification}")
        for cause, names in job.causes.items():
            out.append(f"      {cause}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}")
        for f in job.files:
            if f.status == "identical":
                continue
            multiline = "\n" in f.detail
            inline = f": {f.detail}" if f.detail and not multiline else ""
            out.append(f"      output {f.name}: {f.status} ({f.tier}){inline}")
            if multiline:
                out += [f"        {line}" for line in f.detail.splitlines()]
    same = sum(1 for j in diff.jobs if j.identical)
    out.append(
        f"{'IDENTICAL' if diff.identical else 'DIFFERENT'}: "
        f"{same} of {len(diff.jobs)} jobs identical"
    )
    return "\n".join(out)
