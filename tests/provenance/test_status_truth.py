"""The run's status is the truth, with real Snakemake: a job that exits 0 but leaves a declared
output missing is a failed attempt (its record lists the output), Snakemake reports the failure,
and the signed closing says failed; a re-run with nothing to do leaves no new bundle.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from poxrun import bundles, only_bundle, pox, read_records, run_snakemake

pytestmark = pytest.mark.integration

SNAKEFILE = """\
rule all:
    input: "promised.txt"

rule lazy:
    output: "promised.txt"
    shell: "echo nothing here"
"""


def test_a_missing_output_fails_the_attempt_and_the_run(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    result = run_snakemake(tmp_path, expect_ok=False)
    assert result.returncode != 0
    bundle = only_bundle(tmp_path)
    (record,) = read_records(bundle)
    assert record.internal["exit_code"] == 0
    assert record.status == "failed"
    assert record.internal["missing_outputs"] == ["promised.txt"]
    verify = pox("verify", "--allow-simulated", "--offline", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "status=failed" in verify.stdout
    show = pox("show", cwd=tmp_path)
    assert "MISSING outputs: promised.txt" in show.stdout
    assert "(failed)" in show.stdout


def test_a_rerun_with_nothing_to_do_leaves_no_empty_bundle(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "echo a > {output}"\n'
    )
    run_snakemake(tmp_path)
    first = only_bundle(tmp_path)
    run_snakemake(tmp_path)  # nothing to do
    assert bundles(tmp_path) == [first]
    verify = pox("verify", "--allow-simulated", "--offline", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "status=succeeded" in verify.stdout
