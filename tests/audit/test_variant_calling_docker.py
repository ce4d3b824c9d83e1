"""The variant-calling example, rebuilt from the rules/bio modules, run once with
`--pox-backend docker` on the real Docker engine in the measured pox/bio image; that one run
serves several checks (CI runs the example several times already):

- every job of every kind (shell, script:, run:, checkpoint, the jobs it adds, localrules) ran in
  the pox/bio image: builder id, environment and evidence name its measurement;
- the calls match the planted truth (precision and recall 1.000 for every isolate), the run
  verifies;
- `pox reproduce`'s image check: the recorded image is present in the engine by digest, so the
  reproduction is prepared; a recorded measurement the engine lacks refuses it before anything
  is copied.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docker_images import REPO, images
from poxrun import bundles, read_records, snakemake_env

from pox_executor.audit.reproduce import plan, prepare
from pox_executor.audit.verify import verify_run
from pox_executor.enclave.evidence import Evidence, parse_sim_report
from pox_executor.errors import UsageError
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.records import SessionOpen, read_entries

EXAMPLE = REPO / "workflows" / "variant-calling"
RULES = {
    "stage_reference", "bwa_index", "plant_variants", "normalize_truth", "simulate_reads",
    "trim_reads", "map_reads", "sort_bam", "mapping_stats", "call_variants", "filter_calls",
    "variant_windows", "window_haplotypes", "report", "all",
}  # fmt: skip


def evidence_of(statement: dict) -> Evidence:  # type: ignore[type-arg]
    for byproduct in statement["predicate"]["runDetails"]["byproducts"]:
        if byproduct.get("name") == "pox:tee-evidence":
            return Evidence.from_json(byproduct["annotations"]["evidence"], where="test")
    raise AssertionError("no evidence")


@pytest.mark.integration
def test_variant_calling_runs_in_the_bio_image(tmp_path: Path) -> None:
    measurement = images("bio")["bio"].measurement
    workdir = tmp_path / "variant-calling"
    # copytree follows the example's `rules` symlink: the copy holds rules/bio itself, which the
    # container (it mounts the working directory only) needs for the script: and run: jobs
    shutil.copytree(
        EXAMPLE, workdir, ignore=shutil.ignore_patterns("results", ".snakemake", ".pox")
    )
    assert not (workdir / "rules").is_symlink() and (workdir / "rules/bio/Snakefile").is_file()
    command = [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "2"]
    run = subprocess.run(
        [*command, "--pox-backend", "docker"],
        cwd=workdir,
        env=snakemake_env(workdir),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]

    (bundle_dir,) = bundles(workdir)
    statements = [r.statement for r in read_records(bundle_dir)]
    seen: dict[str, int] = {}
    for statement in statements:
        if statement["predicateType"] != "https://slsa.dev/provenance/v1":
            continue
        predicate = statement["predicate"]
        rule = predicate["buildDefinition"]["externalParameters"]["rule"]
        internal = predicate["buildDefinition"]["internalParameters"]
        assert internal["status"] == "succeeded" and internal["backend"] == "docker", rule
        assert predicate["runDetails"]["builder"]["id"].endswith(f"@sha256:{measurement}"), rule
        deps = {d["name"]: d for d in predicate["buildDefinition"]["resolvedDependencies"]}
        assert deps["pox:environment/image"]["digest"]["sha256"] == measurement, rule
        assert parse_sim_report(evidence_of(statement)).measurement == measurement, rule
        seen[rule] = seen.get(rule, 0) + 1
    assert set(seen) == RULES
    assert seen["window_haplotypes"] == 5 and sum(seen.values()) == 33
    # the module's files are workflow sources of the run, as the example's own are
    bundle = RunBundle.load(bundle_dir)
    opening = read_entries(bundle.attestations_path)[0]
    assert isinstance(opening, SessionOpen)
    sources = {s.name for s in opening.workflow_sources}
    assert {"Snakefile", "rules/bio/Snakefile", "rules/bio/alignment.smk"} <= sources

    with (workdir / "results" / "report" / "summary.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["sample"] for r in rows] == ["isolate_A", "isolate_B", "isolate_C"], rows
    assert all(r["precision"] == "1.000" and r["recall"] == "1.000" for r in rows), rows

    report = verify_run(bundle, allow_simulated=True)
    assert report.ok, [f.message for f in report.errors]

    # pox reproduce's image check, on the Docker engine that ran the jobs
    recorded = plan(bundle)
    assert recorded.backend == "docker" and recorded.images == {f"sha256:{measurement}"}
    other = "sha256:" + ("0" if measurement[0] != "0" else "1") + measurement[1:]
    with pytest.raises(UsageError) as refused:
        prepare(dataclasses.replace(recorded, images={other}), tmp_path / "refused")
    assert f"image {other}: not present in the Docker engine" in str(refused.value)
    assert not (tmp_path / "refused").exists()
    prepare(recorded, tmp_path / "again")
    for name in ("Snakefile", "rules/bio/Snakefile", "data/lambda_virus.fa.gz"):
        assert (tmp_path / "again" / name).is_file(), name
    assert json.loads(json.dumps(recorded.config_overrides)) == {}
