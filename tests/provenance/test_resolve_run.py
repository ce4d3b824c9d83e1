"""Naming a run on the command line: a run id or a prefix of one, a bundle directory, or the
working directory of a workflow (its latest run), as a user typing `pox verify results/` means.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pox_executor.errors import UsageError
from pox_executor.provenance.bundle import RunBundle, resolve_run


@pytest.fixture()
def two_workdirs(tmp_path: Path) -> tuple[Path, Path, RunBundle]:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    RunBundle.create(here)
    RunBundle.create(there)
    latest_there = RunBundle.create(there)
    return here, there, latest_there


def test_a_working_directory_names_its_latest_run(
    two_workdirs: tuple[Path, Path, RunBundle],
) -> None:
    here, there, latest_there = two_workdirs
    assert resolve_run(str(there), here).run_id == latest_there.run_id


def test_a_bundle_directory_and_a_run_id_still_name_that_run(
    two_workdirs: tuple[Path, Path, RunBundle],
) -> None:
    here, there, latest_there = two_workdirs
    assert resolve_run(str(latest_there.path), here).run_id == latest_there.run_id
    assert resolve_run(latest_there.run_id, there).run_id == latest_there.run_id


def test_a_directory_without_runs_is_an_error_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no PoX runs under .*\.pox/runs") as caught:
        resolve_run(None, tmp_path)
    assert "working directory" in str(caught.value.hint)
