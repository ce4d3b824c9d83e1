"""`ci_mode`: one rule decides "in CI" for every suite, and CI never passes by skipping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ci_mode import in_ci, missing_tool

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True", "yes", "Yes", "on", "ON", " true "])
def test_truthy_values_mean_ci(value: str) -> None:
    assert in_ci({"CI": value})


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no", "off", "nope"])
def test_other_values_do_not(value: str) -> None:
    assert not in_ci({"CI": value})


def test_unset_is_not_ci() -> None:
    assert not in_ci({})


@pytest.mark.parametrize("value", ["1", "true", "yes", "on"])
def test_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"anvil not installed .*CI never skips"):
        missing_tool("anvil not installed")


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="forge not installed"):
        missing_tool("forge not installed")


@pytest.fixture
def skipping_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A suite with this repository's conftest and one test that skips itself."""
    shutil.copy(TESTS / "ci_mode.py", pytester.path / "ci_mode.py")
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(
        test_skips="import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no tool here')\n"
    )
    return pytester


def test_a_skip_fails_the_session_in_ci(
    skipping_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "1")
    result = skipping_suite.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*skipped while CI is set*no tool here*"])


def test_a_skip_stays_a_skip_outside_ci(
    skipping_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    skipping_suite.runpytest_subprocess("-q").assert_outcomes(skipped=1)
