"""`pox diff` and `pox reproduce`.

Unit tests check the output tiers on files pysam writes (BAM differing only in @PG/@CO, VCF
differing only in date and command header lines, gzip differing only in its header). The
integration tests run real Snakemake under `--executor pox` (sim backend): a small workflow is
reproduced from its bundle and from its exported crate, and the variant-calling example is run
twice with one rule's parameter changed, where `pox diff` must name that rule first.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from crate_validator import seed_context_cache, validate
from poxrun import bundles, run_snakemake

from pox_executor.audit.diff import compare_files
from pox_executor.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "workflows" / "variant-calling"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- output tiers -------------------------------------------------------------------------------


def write_bam(path: Path, program: str, sequence: str = "ACGTACGT") -> None:
    import pysam

    header = {
        "HD": {"VN": "1.6", "SO": "unsorted"},
        "SQ": [{"SN": "chr1", "LN": 1000}],
        "PG": [{"ID": program, "PN": program, "CL": f"{program} --run"}],
        "CO": [f"made by {program}"],
    }
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i in range(3):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"r{i}"
            read.query_sequence = sequence
            read.flag = 0
            read.reference_id = 0
            read.reference_start = 10 * i
            read.mapping_quality = 60
            read.cigartuples = [(0, len(sequence))]
            read.query_qualities = pysam.qualitystring_to_array("I" * len(sequence))
            out.write(read)


def test_bam_differing_only_in_pg_and_co_is_equivalent(tmp_path: Path) -> None:
    write_bam(tmp_path / "a.bam", "bwa")
    write_bam(tmp_path / "b.bam", "minimap2")
    write_bam(tmp_path / "c.bam", "bwa", sequence="ACGTACGA")
    assert (tmp_path / "a.bam").read_bytes() != (tmp_path / "b.bam").read_bytes()
    same = compare_files("x.bam", tmp_path / "a.bam", tmp_path / "b.bam")
    assert (same.status, same.tier) == ("equivalent", "bam")
    other = compare_files("x.bam", tmp_path / "a.bam", tmp_path / "c.bam")
    assert (other.status, other.tier) == ("different", "bam")
    assert "ACGTACGA" in other.detail


VCF = """##fileformat=VCFv4.2
##fileDate={date}
##contig=<ID=chr1,length=1000>
##bcftools_callCommand=call -m {date}
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
chr1\t10\t.\tA\tG\t{qual}\tPASS\tDP=12
"""


def test_vcf_compares_records_without_date_and_command_lines(tmp_path: Path) -> None:
    (tmp_path / "a.vcf").write_text(VCF.format(date="20260101", qual=50))
    (tmp_path / "b.vcf").write_text(VCF.format(date="20261201", qual=50))
    (tmp_path / "c.vcf").write_text(VCF.format(date="20261201", qual=70))
    assert compare_files("v.vcf", tmp_path / "a.vcf", tmp_path / "b.vcf").status == "equivalent"
    changed = compare_files("v.vcf", tmp_path / "a.vcf", tmp_path / "c.vcf")
    assert (changed.status, changed.tier) == ("different", "vcf")
    assert "-chr1\t10\t.\tA\tG\t50" in changed.detail and "+chr1\t10\t.\tA\tG\t70" in changed.detail


def test_gzip_by_content_then_text_excerpt(tmp_path: Path) -> None:
    for name, mtime, text in (("a", 1, "x\ny\n"), ("b", 2, "x\ny\n"), ("c", 3, "x\nz\n")):
        with gzip.GzipFile(tmp_path / f"{name}.txt.gz", "wb", mtime=mtime) as handle:
            handle.write(text.encode())
    a, b, c = (tmp_path / f"{n}.txt.gz" for n in "abc")
    assert a.read_bytes() != b.read_bytes()
    assert compare_files("t.txt.gz", a, b).status == "equivalent"
    changed = compare_files("t.txt.gz", a, c)
    assert (changed.status, changed.tier) == ("different", "gzip")
    assert "-y" in changed.detail and "+z" in changed.detail
    (tmp_path / "p").write_bytes(b"\x00\x01\x02")
    (tmp_path / "q").write_bytes(b"\x00\x09\x02")
    binary = compare_files("bin", tmp_path / "p", tmp_path / "q")
    assert binary.tier == "binary" and "byte 1" in binary.detail


# -- reproduce ----------------------------------------------------------------------------------

SMALL = """
rule all:
    input: "out/summary.txt"

rule upper:
    input: "data/{name}.txt"
    output: "out/{name}.upper"
    shell: "tr a-z A-Z < {input} > {output}"

rule summary:
    input: expand("out/{name}.upper", name=["x", "y"])
    output: "out/summary.txt"
    params: sep=config.get("sep", "--")
    shell: "cat {input} > {output} && echo {params.sep} >> {output}"
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("small") / "w"
    (workdir / "data").mkdir(parents=True)
    (workdir / "Snakefile").write_text(SMALL)
    (workdir / "data" / "x.txt").write_text("hello\n")
    (workdir / "data" / "y.txt").write_text("world\n")
    # command-line overrides: one recorded by value, one withheld (its key looks like a secret)
    run_snakemake(workdir, "--config", "sep=++", "api_token=s3cret")
    return workdir


@pytest.fixture
def pox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SNAKEMAKE_POX_CHAIN", "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.integration
def test_reproduce_a_run_and_its_crate(
    small_run: Path, tmp_path: Path, pox_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (bundle,) = bundles(small_run)
    assert b"s3cret" not in (bundle / "attestations.intoto.jsonl").read_bytes()
    # the withheld value must be given again, and must match its recorded digest
    code, _, err = cli(capsys, "reproduce", str(bundle), "--in", str(tmp_path / "again"))
    assert code == 2 and "give it with --config api_token=VALUE" in err, err
    code, _, err = cli(
        capsys, "reproduce", str(bundle), "--in", str(tmp_path / "again"), "--config",
        "api_token=guess",
    )  # fmt: skip
    assert code == 2 and "does not have the recorded SHA-256" in err, err
    assert not (tmp_path / "again").exists() and "Traceback" not in err
    code, out, err = cli(
        capsys, "reproduce", str(bundle), "--in", str(tmp_path / "again"), "--json", "--config",
        "api_token=s3cret",
    )  # fmt: skip
    assert code == 0, out + err
    result = json.loads(out)
    assert result["identical"] is True and result["notes"] == [], result["notes"]
    assert sorted(j["rule"] for j in result["jobs"]) == ["all", "summary", "upper", "upper"]
    # the recorded --config sep=++ was replayed (the Snakefile's default is --)
    assert (tmp_path / "again" / "out" / "summary.txt").read_text() == "HELLO\nWORLD\n++\n"

    crate = tmp_path / "run.crate"
    assert cli(capsys, "export", str(bundle), "-o", str(crate))[0] == 0
    report = validate(crate, seed_context_cache(tmp_path / "validator-cache"))
    assert report["passed"] is True and report["skipped_checks"] == 0, report.get("issues")
    code, out, err = cli(
        capsys, "reproduce", str(crate), "--in", str(tmp_path / "from-crate"), "--config",
        "api_token=s3cret",
    )  # fmt: skip
    assert code == 0, out + err
    assert "IDENTICAL: 4 of 4 jobs identical" in out


@pytest.mark.integration
def test_reproduce_refuses_an_input_that_differs(
    small_run: Path, tmp_path: Path, pox_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "w"
    shutil.copytree(small_run, copy)
    (copy / "data" / "y.txt").write_text("changed\n")
    (copy / "data" / "x.txt").unlink()
    (bundle,) = bundles(copy)
    again = str(tmp_path / "again")
    code, _, err = cli(
        capsys, "reproduce", str(bundle), "--in", again, "--config", "api_token=s3cret"
    )
    assert code == 2
    assert "input data/y.txt: sha256" in err and "input data/x.txt: missing" in err
    assert "Traceback" not in err
    assert not (tmp_path / "again").exists()


# -- the variant-calling example, twice ---------------------------------------------------------


@pytest.mark.integration
def test_diff_names_the_changed_rule_first_and_classifies_its_descendants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = [t for t in ("bwa", "samtools", "bcftools", "fastp") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the variant-calling example needs {', '.join(missing)} (apt-packages.txt)")
    first = tmp_path / "a"
    shutil.copytree(EXAMPLE, first, ignore=shutil.ignore_patterns("results", ".snakemake", ".pox"))
    run_snakemake(first, timeout_s=900)
    # the same directory copied, one rule's parameter changed: Snakemake re-runs that rule and
    # what depends on it, reusing the rest
    second = tmp_path / "b"
    shutil.copytree(first, second, symlinks=True)
    config = second / "config.yaml"
    config.write_text(config.read_text().replace("min_qual: 30 ", "min_qual: 50 "))
    run_snakemake(second, timeout_s=900)
    (run_a,) = bundles(first)
    run_b = next(b for b in bundles(second) if b.name != run_a.name)

    code, out, err = cli(capsys, "diff", str(run_a), str(run_b), "--json")
    assert code == 1, err
    result = json.loads(out)
    assert result["diverged_first"] == ["filter_calls"]
    jobs = {j["label"]: j for j in result["jobs"]}
    assert result["jobs"][0]["label"] == "filter_calls"
    assert jobs["filter_calls"]["causes"] == {"params": ["min_qual"]}
    (vcf,) = [o for o in jobs["filter_calls"]["outputs"] if o["name"].endswith(".vcf.gz")]
    assert (vcf["status"], vcf["tier"]) == ("different", "vcf")
    assert "QUAL<50" in vcf["detail"]
    descendants = [
        j for j in result["jobs"] if j["rule"] in ("variant_windows", "window_haplotypes", "report")
    ]
    assert len(descendants) >= 3
    for job in descendants:
        assert job["classification"].startswith("inputs changed"), job
        assert list(job["causes"]) == ["inputs"]
    reused = [j for j in result["jobs"] if j["rule"] in ("map_reads", "call_variants")]
    assert reused and all(j["classification"].startswith("not re-run in B") for j in reused)
    assert result["sources"] == ["config.yaml"]

    code, text, _ = cli(capsys, "diff", str(run_a), str(run_b))
    lines = text.splitlines()
    assert code == 1 and "diverged first: filter_calls" in lines
    assert lines[lines.index("diverged first: filter_calls") + 1].startswith("* filter_calls")
    assert cli(capsys, "diff", str(run_a), str(run_a))[0] == 0
    code, _, err = cli(capsys, "diff", str(run_a), str(tmp_path / "no-such-run"))
    assert code == 2 and "Traceback" not in err
