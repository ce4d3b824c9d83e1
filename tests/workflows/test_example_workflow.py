"""The example workflow `workflows/variant-calling` run end to end with Snakemake's local executor.

The integration test copies the workflow to a temporary directory, runs `snakemake --cores 2`
and checks the joint calls against the planted truth itself (not through the workflow's own
report script), plus the job kinds whose traces are visible on disk: temp() outputs removed,
directory() outputs present, one haplotype file per checkpoint window.

The unit tests below exercise the truth design of `scripts/plant_variants.py` without any tool.
"""

import gzip
import importlib.util
import itertools
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "variant-calling"
SAMPLES = ["isolate_A", "isolate_B", "isolate_C"]
# command on PATH -> Debian package that provides it (must be listed in apt-packages.txt)
TOOLS = {"bwa": "bwa", "samtools": "samtools", "bcftools": "bcftools", "fastp": "fastp"}

Key = tuple[str, int, str, str]


def load_plant_variants():
    spec = importlib.util.spec_from_file_location(
        "plant_variants", WORKFLOW / "scripts" / "plant_variants.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vcf_records(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return [line.rstrip("\n").split("\t") for line in handle if not line.startswith("##")]


def truth_set(path: Path) -> set[Key]:
    rows = vcf_records(path)[1:]
    return {(r[0], int(r[1]), r[3], r[4]) for r in rows}


def called_sets(path: Path) -> dict[str, set[Key]]:
    header, *rows = vcf_records(path)
    samples = header[9:]
    calls: dict[str, set[Key]] = {s: set() for s in samples}
    for r in rows:
        if r[6] != "PASS":
            continue
        gt_index = r[8].split(":").index("GT")
        for sample, values in zip(samples, r[9:], strict=True):
            if values.split(":")[gt_index] == "1":
                calls[sample].add((r[0], int(r[1]), r[3], r[4]))
    return calls


def test_apt_packages_list_names_every_tool() -> None:
    listed = set((WORKFLOW / "apt-packages.txt").read_text().split())
    assert set(TOOLS.values()) <= listed


def test_truth_design_is_deterministic_spaced_and_shared() -> None:
    plant = load_plant_variants()
    rng = random.Random(1)
    seq = "".join(rng.choice("ACGT") for _ in range(20_000))
    sim = {
        "seed": 7,
        "shared_snvs": 3,
        "shared_indels": 1,
        "private_snvs": 4,
        "private_indels": 2,
        "min_spacing": 300,
    }
    first = plant.design(seq, SAMPLES, sim)
    assert first == plant.design(seq, SAMPLES, sim)
    assert len(first) == 4 + 3 * 6
    positions = [v.pos for v in first]
    assert all(b - a >= 300 for a, b in itertools.pairwise(positions))
    for sample in SAMPLES:
        mine = [v for v in first if sample in v.carriers]
        assert sum(len(v.carriers) == 3 for v in mine) == 4
        haplotype = plant.apply(seq, mine)
        assert len(haplotype) - len(seq) == sum(len(v.alt) - len(v.ref) for v in mine)
        for v in mine:
            assert seq[v.pos - 1 : v.pos - 1 + len(v.ref)] == v.ref


@pytest.mark.integration
def test_workflow_calls_exactly_the_planted_variants(tmp_path: Path) -> None:
    missing = {tool: pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None}
    if missing:
        pytest.fail(
            "the variant-calling workflow needs "
            + ", ".join(f"`{tool}`" for tool in missing)
            + "; install the Debian package(s): apt-get install "
            + " ".join(sorted(set(missing.values())))
            + f" (all of them are listed in {WORKFLOW / 'apt-packages.txt'})"
        )
    workdir = tmp_path / "variant-calling"
    shutil.copytree(
        WORKFLOW, workdir, ignore=shutil.ignore_patterns("results", ".snakemake", ".pox")
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    results = workdir / "results"
    calls = called_sets(results / "calls" / "filtered.vcf.gz")
    assert sorted(calls) == SAMPLES
    truths = {s: truth_set(results / "truth" / f"{s}.truth.vcf") for s in SAMPLES}
    for sample in SAMPLES:
        assert len(truths[sample]) == 13
        assert calls[sample] == truths[sample], (
            f"{sample}: missed {sorted(truths[sample] - calls[sample])}, "
            f"extra {sorted(calls[sample] - truths[sample])}"
        )
    shared = set.intersection(*truths.values())
    assert len(shared) == 5
    assert any(len(ref) != len(alt) for _, _, ref, alt in shared)

    summary = (results / "report" / "summary.tsv").read_text().splitlines()
    header = summary[0].split("\t")
    for line in summary[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        assert (row["precision"], row["recall"]) == ("1.000", "1.000"), row
    assert "Every planted variant was called" in (results / "report" / "report.md").read_text()

    # temp() outputs are gone, directory() outputs and the checkpoint's fan-out are there
    assert not list((results / "truth").glob("*.haplotype.fa"))
    assert not (results / "trimmed").exists() or not any((results / "trimmed").iterdir())
    assert not list((results / "mapped").glob("*.unsorted.bam"))
    assert (results / "reference" / "bwa_index" / "lambda.bwt").is_file()
    windows = sorted(p.stem for p in (results / "windows").glob("*.bed"))
    haplotypes = sorted(p.stem for p in (results / "haplotypes").glob("*.fa"))
    assert windows and windows == haplotypes
    for name in haplotypes:
        text = (results / "haplotypes" / f"{name}.fa").read_text()
        assert [line[1:] for line in text.splitlines() if line.startswith(">")] == [
            "reference",
            *SAMPLES,
        ]
