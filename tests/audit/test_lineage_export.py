"""`pox lineage`, `pox dag` and `pox export` on runs recorded in-process.

The exported RO-Crate is validated by the real `rocrate-validator` against the Provenance Run
Crate 0.5 profile at REQUIRED severity, offline (see `crate_validator.py`): zero issues, no check
skipped. Files in the crate (and PROV entities) carry IPFS CIDs, checked against Debian's
`ipfs_cid`. PROV documents are read back with the `prov` package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ci_mode import missing_tool
from crate_validator import seed_context_cache, validate
from recorded import DAG, RecordedRun, Step, record_run

from pox_executor.cli import main
from pox_executor.provenance.bundle import list_runs
from pox_executor.provenance.tlog_proof import parse_proof


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordedRun, RecordedRun]:
    workdir = tmp_path_factory.mktemp("lineage") / "w"
    first = record_run(
        workdir, (*DAG, Step(4, "e", ("b.txt", "c.txt"), ("e.txt",), "cat b.txt c.txt > e.txt"))
    )
    second = record_run(workdir, (Step(1, "d", ("e.txt",), ("d.txt",), "rev e.txt > d.txt"),))
    return first, second


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_lineage_up_crosses_runs_and_shows_each_envelope(
    runs: tuple[RecordedRun, RecordedRun], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = runs
    workdir = second.bundle.workdir
    code, out, _ = cli(
        capsys, "lineage", "d.txt", "-C", str(workdir), "--allow-simulated", "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    jobs = {n["rule"]: n for n in doc["nodes"] if n["kind"] == "job"}
    assert set(jobs) == {"a", "b", "c", "e", "d"}
    assert jobs["d"]["run_id"] == second.bundle.run_id
    assert jobs["a"]["run_id"] == first.bundle.run_id
    assert all(j["verified"] is True and len(j["envelope"]) == 64 for j in jobs.values())
    raw = [n for n in doc["nodes"] if n["kind"] == "file" and n["name"] == "data.txt"]
    assert len(raw) == 1
    code, text, _ = cli(capsys, "lineage", "d.txt", "-C", str(workdir))
    assert code == 0
    for data in jobs.values():
        assert data["envelope"][:16] in text
    assert "NOT verified (simulated evidence" in text
    assert "5 jobs NOT verified" in text


def test_lineage_down_and_dot(
    runs: tuple[RecordedRun, RecordedRun], capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = runs[1].bundle.workdir
    code, out, _ = cli(
        capsys, "lineage", "c.txt", "--down", "-C", str(workdir), "--allow-simulated"
    )
    assert code == 0
    assert "-> job e" in out and "-> job d" in out and "job b" not in out
    code, dot, _ = cli(capsys, "lineage", "c.txt", "--down", "-C", str(workdir), "--format", "dot")
    assert code == 0 and dot.startswith('digraph "lineage"') and "NOT VERIFIED" in dot


def test_lineage_of_an_unknown_file_is_a_usage_error(
    runs: tuple[RecordedRun, RecordedRun], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "lineage", "nothing.txt", "-C", str(runs[1].bundle.workdir))
    assert code == 2
    assert "nothing.txt" in err and "Traceback" not in err


def test_dag_formats(
    runs: tuple[RecordedRun, RecordedRun], capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = runs
    workdir = first.bundle.workdir
    run = first.bundle.run_id
    code, out, _ = cli(
        capsys, "dag", run, "-C", str(workdir), "--format", "json", "--allow-simulated"
    )
    doc = json.loads(out)
    assert code == 0 and len(doc["nodes"]) == 4 and len(doc["edges"]) == 4
    code, mermaid, _ = cli(capsys, "dag", run, "-C", str(workdir), "--format", "mermaid")
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->") == 4
    code, dot, _ = cli(capsys, "dag", run, "-C", str(workdir))
    assert dot.count("->") == 4


def test_rocrate_export_validates_against_provenance_run_crate(
    runs: tuple[RecordedRun, RecordedRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = runs
    workdir = first.bundle.workdir
    crate = tmp_path / "run.crate"
    code, _, err = cli(capsys, "export", first.bundle.run_id, "-C", str(workdir), "-o", str(crate))
    assert code == 0, err
    report = validate(crate, seed_context_cache(tmp_path / "cache"))
    issues = report.get("issues", [])
    assert report["passed"] is True, json.dumps(issues, indent=1)[:3000]
    assert issues == [] and report["skipped_checks"] == 0
    assert "provenance-run-crate-0.5" in report["statistics"]["profiles"]

    graph = {
        e["@id"]: e for e in json.loads((crate / "ro-crate-metadata.json").read_text())["@graph"]
    }
    actions = [
        e for e in graph.values() if e["@type"] == "CreateAction" and e["@id"].startswith("#job/")
    ]
    assert len(actions) == 4
    for action in actions:
        assert {"instrument", "object", "result", "startTime", "endTime", "actionStatus"} <= set(
            action
        )
        proof_file, log_file = (link["@id"] for link in action["subjectOf"])
        proof = parse_proof((crate / proof_file).read_text())
        assert proof.extra is not None
        assert hashlib.sha256(proof.extra).hexdigest() == action["identifier"]
        assert proof.extra in (crate / log_file).read_bytes().splitlines()
        checkpoint = (crate / log_file).with_name("checkpoint").read_text()
        assert proof.signed_checkpoint == checkpoint
        assert graph[action["containerImage"]["@id"]]["sha256"]
    controls = [e for e in graph.values() if e["@type"] == "ControlAction"]
    steps = [e for e in graph.values() if e["@type"] == "HowToStep"]
    assert len(controls) == len(steps) == 4
    (organize,) = [e for e in graph.values() if e["@type"] == "OrganizeAction"]
    assert "Snakemake" in graph[organize["instrument"]["@id"]]["name"]
    assert graph["a.txt"]["sha256"] == hashlib.sha256((workdir / "a.txt").read_bytes()).hexdigest()
    assert (crate / "a.txt").read_bytes() == (workdir / "a.txt").read_bytes()
    # every file whose bytes are in the crate carries its CID, as an independent tool computes it
    files = [
        e for e in graph.values()
        if "File" in _types(e) and "sha256" in e and (crate / e["@id"]).is_file()
    ]  # fmt: skip
    assert {"a.txt", "b.txt", "data.txt"} <= {f["@id"] for f in files}
    for entry in files:
        cid = graph[entry["identifier"]["@id"]]
        assert cid["@type"] == "PropertyValue" and cid["propertyID"] == "cid"
        assert cid["name"] == "IPFS CID (unixfs-v0-2015)"
        assert cid["value"] == debian_ipfs_cid(crate / entry["@id"]), entry["@id"]
    # the crate embeds the bundle: it verifies there, files included
    code, out, err = cli(capsys, "verify", "--allow-simulated", "--offline", "-C", str(crate))
    assert code == 0, out + err


def _types(entity: dict[str, Any]) -> list[str]:
    kind = entity["@type"]
    return kind if isinstance(kind, list) else [kind]


def debian_ipfs_cid(path: Path) -> str:
    """CIDv0 of `ipfs add` (Kubo defaults) by Debian's `ipfs_cid`, not by PoX's importer."""
    tool = shutil.which("ipfs_cid")
    if tool is None:
        missing_tool("ipfs_cid not installed (Debian package ipfs-cid)")
    answer = subprocess.run([str(tool), str(path)], capture_output=True, text=True, check=True)
    return str(json.loads(answer.stdout)["CIDv0"])


def test_prov_and_intoto_exports(
    runs: tuple[RecordedRun, RecordedRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prov.model import ProvDocument

    first, _ = runs
    workdir, run = first.bundle.workdir, first.bundle.run_id
    out = tmp_path / "run.prov.json"
    assert (
        cli(capsys, "export", run, "-C", str(workdir), "--format", "prov", "-o", str(out))[0] == 0
    )
    document = ProvDocument.deserialize(content=out.read_text(), format="json")
    labels = {
        str(a.get_attribute("prov:label").pop())
        for a in document.get_records()
        if a.is_element() and a.get_type().uri.endswith("Activity")
    }
    assert {"a", "b", "c", "e"} <= labels
    cids = {
        str(e.get_attribute("pox:name").pop()): str(e.get_attribute("pox:cid").pop())
        for e in document.get_records()
        if e.is_element() and e.get_attribute("pox:cid")
    }
    assert cids["a.txt"] == debian_ipfs_cid(workdir / "a.txt")
    profiles = {
        str(p) for e in document.get_records() if e.is_element()
        for p in e.get_attribute("pox:cidProfile")
    }  # fmt: skip
    assert profiles == {"unixfs-v0-2015"}
    provn = tmp_path / "run.provn"
    assert (
        cli(capsys, "export", run, "-C", str(workdir), "--format", "provn", "-o", str(provn))[0]
        == 0
    )
    assert provn.read_text().startswith("document") and "wasGeneratedBy(" in provn.read_text()
    bundle_copy = tmp_path / "log.jsonl"
    assert (
        cli(
            capsys, "export", run, "-C", str(workdir), "--format", "intoto", "-o", str(bundle_copy)
        )[0]
        == 0
    )
    (bundle,) = [b for b in list_runs(workdir) if b.run_id == run]
    assert bundle_copy.read_bytes() == bundle.attestations_path.read_bytes()
    # an existing output is never replaced
    code, _, err = cli(
        capsys, "export", run, "-C", str(workdir), "--format", "intoto", "-o", str(bundle_copy)
    )
    assert code == 2 and "already exists" in err
    assert bundle_copy.read_bytes() == bundle.attestations_path.read_bytes()
