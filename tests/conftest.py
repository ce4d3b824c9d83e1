"""Test-wide setup. Its presence puts `tests/` on sys.path, so suites share `poxrun` and `ci_mode`.

In CI (`ci_mode.in_ci()`) a skipped test is reported as failed: CI never passes by skipping.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from ci_mode import CI_VARIABLE, in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped while {CI_VARIABLE} is set, which CI never allows: {reason}"
