"""A `container:` rule runs as a plain shell job when Snakemake does not deploy containers
(no `--sdm apptainer`): Snakemake's shell() ignores the image then, so spawning a whole
Snakemake per job (2.5-3 s each) bought nothing. Real Snakemake, real sandbox."""

from __future__ import annotations

from pathlib import Path

from poxrun import Record, only_bundle, read_records, run_snakemake

SNAKEFILE = """
rule all:
    input: "c.txt"

rule c:
    output: "c.txt"
    container: "docker://debian:12"
    shell: "echo in-container-rule > {output}"
"""

SNAKEMAKE_BANNER = "Building DAG of jobs"


def _job_log(workdir: Path, record: Record) -> str:
    for byproduct in record.statement["predicate"]["runDetails"]["byproducts"]:
        if byproduct["name"].endswith(".log") and ".pox/" in byproduct["name"]:
            return (workdir / byproduct["name"]).read_text()
    raise AssertionError(f"no job log named in the record of {record.rule}")


def test_a_container_rule_without_apptainer_runs_directly(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    run_snakemake(workdir)
    assert (workdir / "c.txt").read_text() == "in-container-rule\n"
    (record,) = [r for r in read_records(only_bundle(workdir)) if r.rule == "c"]
    assert record.statement["predicate"]["buildDefinition"]["externalParameters"]["rule"] == "c"
    assert SNAKEMAKE_BANNER not in _job_log(workdir, record), "no Snakemake spawned for it"
