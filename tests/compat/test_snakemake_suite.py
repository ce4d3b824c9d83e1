"""A fixed subset of Snakemake's own test suite runs under `--executor pox` in every CI run.

`ci_selection.txt` names the tests: fast ones (seconds each) that pass with the local executor
and with pox in `make compat` (docs/compat.md), chosen once and kept fixed so a regression in
how PoX runs jobs fails CI. The suite comes from the source distribution of the installed
Snakemake release on PyPI, cached under ~/.cache/pox-compat (POX_COMPAT_CACHE): downloaded when
missing, and a failed download fails the test (never skips).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from poxrun import require_sandbox_tools
from snakemake_suite import (
    CompatError,
    ensure_sdist,
    extract,
    installed_snakemake,
    run_suite,
)

pytestmark = pytest.mark.integration

SELECTION = Path(__file__).with_name("ci_selection.txt")


def _selection() -> list[str]:
    names = [
        line.strip()
        for line in SELECTION.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(names) == len(set(names)), f"{SELECTION}: a test is listed twice"
    return names


def test_selection_is_large_enough() -> None:
    assert len(_selection()) >= 100


def test_snakemake_suite_subset_passes_under_pox(tmp_path: Path) -> None:
    require_sandbox_tools()
    version = installed_snakemake()
    try:
        source = extract(ensure_sdist(version), tmp_path / "src")
        run = run_suite(
            source,
            "pox",
            tmp_path / "results.json",
            select=_selection(),
            timeout_per_test=300,
            scratch=tmp_path,
        )
    except CompatError as exc:
        pytest.fail(str(exc))
    selected = set(_selection())
    missing = sorted(selected - set(run.tests))
    failed = {n: r["cause"] for n, r in sorted(run.tests.items()) if r["outcome"] != "passed"}
    assert not missing, f"not run (renamed in snakemake {version}?): {missing}\n{run.output_tail}"
    assert not failed, "failed under pox:\n" + "\n".join(f"{n}: {c}" for n, c in failed.items())
