"""Naming a run on the command line: a run id or a prefix of one, a bundle directory, or the
working directory of a workflow (its latest run), as a user typing `pox verify results/` means.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pox_executor.cli import main
from pox_executor.errors import UsageError
from pox_executor.provenance.bundle import RunBundle, resolve_run, scan_runs


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


def _damage(bundle: RunBundle, how: str) -> None:
    run_file = bundle.path / "run.json"
    if how == "removed":
        run_file.unlink()
    elif how == "truncated":
        run_file.write_text("{")
    else:
        run_file.write_text('{"run_id": 1}')


@pytest.mark.parametrize("how", ["removed", "truncated", "invalid"])
def test_a_damaged_latest_run_is_never_passed_over_for_an_older_one(
    tmp_path: Path, how: str
) -> None:
    older = RunBundle.create(tmp_path)
    newer = RunBundle.create(tmp_path)
    _damage(newer, how)
    with pytest.raises(UsageError, match=f"the latest run cannot be chosen.*{newer.run_id}"):
        resolve_run(None, tmp_path)
    with pytest.raises(UsageError, match=newer.run_id):
        resolve_run(str(tmp_path), tmp_path / "elsewhere")  # named by its working directory
    with pytest.raises(UsageError, match=newer.run_id):
        resolve_run(newer.run_id[:20], tmp_path)  # a prefix matching the damaged one
    # The intact run can still be named on purpose.
    assert resolve_run(older.run_id, tmp_path).run_id == older.run_id
    assert resolve_run(str(older.path), tmp_path).run_id == older.run_id


def test_an_older_damaged_run_does_not_hide_the_latest(tmp_path: Path) -> None:
    older = RunBundle.create(tmp_path)
    _damage(older, "truncated")
    (older.path).rename(older.path.with_name("20000101T000000Z-000000"))
    newer = RunBundle.create(tmp_path)
    assert resolve_run(None, tmp_path).run_id == newer.run_id
    runs, unreadable = scan_runs(tmp_path)
    assert [r.run_id for r in runs] == [newer.run_id]
    assert [u.path.name for u in unreadable] == ["20000101T000000Z-000000"]
    assert "not valid JSON" in unreadable[0].reason


def test_pox_runs_lists_a_damaged_bundle_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    intact = RunBundle.create(tmp_path)
    damaged = RunBundle.create(tmp_path)
    _damage(damaged, "removed")
    assert main(["runs", "-C", str(tmp_path)]) == 1
    listed = capsys.readouterr().out
    assert intact.run_id in listed
    assert f"{damaged.run_id}" in listed and "UNREADABLE" in listed
    assert main(["verify", "-C", str(tmp_path), "--offline", "--allow-simulated"]) == 2
    assert "the latest run cannot be chosen" in capsys.readouterr().err
