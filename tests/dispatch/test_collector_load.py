"""The collector under concurrent load, small: the load test of benchmarks/bench_collector.py
(100 nodes, 100,000 statements there) with 20 nodes and 600 statements, a third of them resent
(racing or after the reply). Nothing is lost, nothing is appended twice, every resend gets the
first receipt, and the collected run verifies with `pox verify`'s library function."""

from __future__ import annotations

import sys
from pathlib import Path

from pox_executor.audit.verify import verify_run
from pox_executor.provenance.bundle import RunBundle

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_collector import run_load_test


def test_concurrent_nodes_with_resends_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    result = run_load_test(tmp_path, statements=600, nodes=20, resend_fraction=0.3, processes=2)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.sends > result.statements  # some were really sent twice ...
    assert result.resends_answered_with_first_receipt == result.sends - result.statements
    report = verify_run(RunBundle.load(result.bundle), allow_simulated=True)
    assert [f"{f.check}: {f.message}" for f in report.errors] == []
    entries = RunBundle.load(result.bundle).attestations_path.read_bytes().splitlines()
    assert len(entries) == 600 + 2  # ... and appended once: the session's opening and closing
