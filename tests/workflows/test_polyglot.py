"""The polyglot example (`workflows/polyglot`) run with `--pox-backend docker` and verified.

Python, R, Rust (compiled in one rule, run in the next) and Node.js steps each run in their own
enclave image; the test checks the results, that `pox verify --allow-simulated` passes while
strict verification refuses the simulated evidence, and that every job statement names the
measurement of the image its rule asked for.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docker_images import REPO, images

from pox_executor.enclave.evidence import Evidence, parse_sim_report
from pox_executor.provenance.statement import PREDICATE_TYPE

WORKFLOW = REPO / "workflows" / "polyglot"
BIN = Path(sys.executable).parent
RULE_IMAGES = {
    "simulate": "python",
    "summarise": "r",
    "compile_checksum": "rust",
    "checksum": "rust",
    "report": "node",
    "all": "python",
}


def _statements(workdir: Path) -> list[dict]:  # type: ignore[type-arg]
    """The job statements of the run (the log's session openings and closings left out)."""
    (bundle,) = list((workdir / ".pox" / "runs").iterdir())
    lines = (bundle / "attestations.intoto.jsonl").read_bytes().splitlines()
    statements = [json.loads(base64.b64decode(json.loads(line)["payload"])) for line in lines]
    return [s for s in statements if s["predicateType"] == PREDICATE_TYPE]


@pytest.mark.integration
def test_polyglot_workflow_runs_in_four_images_and_verifies(tmp_path: Path) -> None:
    built = images()
    workdir = tmp_path / "polyglot"
    shutil.copytree(
        WORKFLOW, workdir, ignore=shutil.ignore_patterns(".snakemake", ".pox", "results", "bin")
    )
    # The chain has its own tests; this one is about the docker backend.
    argv = [str(BIN / "snakemake"), "--executor", "pox", "--pox-backend", "docker"]
    run = subprocess.run(
        [*argv, "--pox-chain", "none", "--cores", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    report = json.loads((workdir / "results" / "report.json").read_text())
    assert [s["site"] for s in report["sites"]] == ["east", "north", "south"]
    assert all(s["n"] == 40 for s in report["sites"])
    assert report["fastest_growing"] == "east"  # the simulation's steepest slope
    assert report["measurements"]["lines"] == 121
    assert report["produced_by"]["node"].startswith("v18.")
    checksum = (workdir / "results" / "checksum.txt").read_text()
    assert "fnv1a64\t" in checksum
    assert "east\t40\t" in (workdir / "results" / "summary.tsv").read_text()

    statements = _statements(workdir)
    seen = set()
    for statement in statements:
        predicate = statement["predicate"]
        rule = predicate["buildDefinition"]["externalParameters"]["rule"]
        internal = predicate["buildDefinition"]["internalParameters"]
        assert internal["status"] == "succeeded" and internal["backend"] == "docker"
        measurement = built[RULE_IMAGES[rule]].measurement
        assert predicate["runDetails"]["builder"]["id"].endswith(f"@sha256:{measurement}")
        environment = {d["name"]: d for d in predicate["buildDefinition"]["resolvedDependencies"]}
        assert environment["pox:environment/image"]["digest"]["sha256"] == measurement
        evidence_items = [
            b for b in predicate["runDetails"]["byproducts"] if "evidence" in json.dumps(b)
        ]
        assert evidence_items, predicate["runDetails"]["byproducts"]
        raw = _find_evidence(evidence_items[0])
        assert parse_sim_report(Evidence.from_json(raw)).measurement == measurement
        seen.add(rule)
    assert seen == set(RULE_IMAGES)

    verify = subprocess.run(
        [str(BIN / "pox"), "verify", "--allow-simulated"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "SIMULATED" in verify.stdout + verify.stderr
    strict = subprocess.run(
        [str(BIN / "pox"), "verify"], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert strict.returncode != 0


def _find_evidence(node: object) -> dict:  # type: ignore[type-arg]
    """The `{type, value, aux}` evidence object inside a byproduct, wherever it is nested."""
    if isinstance(node, dict):
        if node.get("type") == "sim-report" and "value" in node:
            return node
        for value in node.values():
            try:
                return _find_evidence(value)
            except LookupError:
                continue
    if isinstance(node, list):
        for value in node:
            try:
                return _find_evidence(value)
            except LookupError:
                continue
    raise LookupError("no evidence")
