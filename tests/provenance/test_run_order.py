"""Runs are listed oldest first even when two start within the same second.

A run id is the start second plus a random suffix, so ids alone misorder such runs; `pox
lineage`, `pox show` and every command that defaults to "the latest run" rely on this order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pox_executor.provenance import bundle as bundle_module
from pox_executor.provenance.bundle import RunBundle, list_runs, resolve_run


def test_runs_started_in_the_same_second_are_ordered_by_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = iter(["20260101T000000Z-ffffff", "20260101T000000Z-000000"])
    monkeypatch.setattr(bundle_module, "new_run_id", lambda: next(ids))
    first = RunBundle.create(tmp_path)
    second = RunBundle.create(tmp_path)
    assert second.run_id < first.run_id  # the suffix alone would put the newer run first
    assert [b.run_id for b in list_runs(tmp_path)] == [first.run_id, second.run_id]
    assert resolve_run(None, tmp_path).run_id == second.run_id
