"""The rules/bio modules, used as a Snakemake `module` by workflows/bio-modules, run with
`--pox-backend docker`: every job runs in the measured pox/bio image (its statement's builder id,
environment and evidence name that image's measurement), the QC summary holds the expected
numbers, the run verifies, and `pox html` writes its page."""

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

BIN = Path(sys.executable).parent
RULES = {
    "bio_stage_reference",
    "bio_bwa_index",
    "bio_fastp_pe",
    "bio_bwa_mem",
    "bio_samtools_sort_index",
    "bio_bcftools_call",
    "bio_bcftools_filter",
    "bio_samtools_flagstat",
    "bio_bcftools_stats",
    "bio_qc_summary",
    "bio_all",
}


def _statements(workdir: Path) -> list[dict]:  # type: ignore[type-arg]
    (bundle,) = list((workdir / ".pox" / "runs").iterdir())
    lines = (bundle / "attestations.intoto.jsonl").read_bytes().splitlines()
    statements = [json.loads(base64.b64decode(json.loads(line)["payload"])) for line in lines]
    return [s for s in statements if s["predicateType"] == PREDICATE_TYPE]


def _evidence(statement: dict) -> Evidence:  # type: ignore[type-arg]
    for byproduct in statement["predicate"]["runDetails"]["byproducts"]:
        if byproduct.get("name") == "pox:tee-evidence":
            return Evidence.from_json(byproduct["annotations"]["evidence"], where="test")
    raise AssertionError("no evidence")


@pytest.mark.integration
def test_bio_modules_run_in_the_bio_image_and_verify(tmp_path: Path) -> None:
    measurement = images("bio")["bio"].measurement
    # the example reaches the modules as ../../rules/bio: keep that layout
    workdir = tmp_path / "workflows" / "bio-modules"
    shutil.copytree(
        REPO / "workflows" / "bio-modules",
        workdir,
        ignore=shutil.ignore_patterns(".snakemake", ".pox", "results"),
    )
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    argv = [str(BIN / "snakemake"), "--executor", "pox", "--pox-backend", "docker"]
    run = subprocess.run(
        [*argv, "--pox-chain", "none", "--cores", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    rows = (workdir / "results" / "qc" / "summary.tsv").read_text().splitlines()
    assert rows[0].split("\t") == [
        "sample", "reads_before", "reads_after", "mapped", "mapped_pct", "pass_alt_sites"
    ]  # fmt: skip
    table = {r.split("\t")[0]: r.split("\t")[1:] for r in rows[1:]}
    assert set(table) == {"isolate_A", "isolate_B"}
    for before, after, mapped, _, alt in table.values():
        assert int(before) == 3000 and 2900 <= int(after) <= 3000
        assert int(mapped) >= 0.95 * int(after)
        assert int(alt) >= 5  # planted variants found in each isolate

    seen = set()
    for statement in _statements(workdir):
        predicate = statement["predicate"]
        rule = predicate["buildDefinition"]["externalParameters"]["rule"]
        internal = predicate["buildDefinition"]["internalParameters"]
        assert internal["status"] == "succeeded" and internal["backend"] == "docker", rule
        assert predicate["runDetails"]["builder"]["id"].endswith(f"@sha256:{measurement}"), rule
        deps = {d["name"]: d for d in predicate["buildDefinition"]["resolvedDependencies"]}
        assert deps["pox:environment/image"]["digest"]["sha256"] == measurement
        assert parse_sim_report(_evidence(statement)).measurement == measurement
        seen.add(rule)
    assert seen == RULES

    verify = subprocess.run(
        [str(BIN / "pox"), "verify", "--allow-simulated", "--offline"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    page = subprocess.run(
        [str(BIN / "pox"), "html", "--allow-simulated", "--offline", "-o", "run.html"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert page.returncode == 0 and "verification OK" in page.stdout, page.stderr
    assert "bio_bcftools_call" in (workdir / "run.html").read_text()


def test_single_steps_can_be_included(tmp_path: Path) -> None:
    """`include:` of common.smk and some steps (as rules/README.md shows) plans the right jobs."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    (tmp_path / "Snakefile").write_text(
        'config["samples"] = ["s1"]\n'
        'include: "rules/bio/common.smk"\n'
        'include: "rules/bio/reference.smk"\n'
        'include: "rules/bio/trimming.smk"\n'
        'include: "rules/bio/alignment.smk"\n'
        'include: "rules/bio/sorting.smk"\n'
        'rule all:\n    input: "results/mapped/s1.bam"\n'
    )
    (tmp_path / "data" / "reads").mkdir(parents=True)
    for name in ("data/reference.fa", "data/reads/s1_R1.fastq.gz", "data/reads/s1_R2.fastq.gz"):
        (tmp_path / name).write_text("")
    plan = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", "--quiet", "rules"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for rule in ("bio_stage_reference", "bio_bwa_index", "bio_fastp_pe", "bio_bwa_mem"):
        assert rule in plan.stdout, plan.stdout
    assert "bio_bcftools_call" not in plan.stdout
