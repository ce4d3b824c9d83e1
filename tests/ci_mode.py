"""The one rule for "this test session runs in CI", and what a missing tool means there.

`in_ci()` is true when the environment variable `CI` holds any truthy value (`1`, `true`, `yes`,
`on`, in any case), as CI services set it. In CI a missing tool fails the test; on a developer
machine it skips it. `tests/conftest.py` also turns any skip into a failure in CI, so no suite
can pass there by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest

CI_VARIABLE = "CI"
TRUTHY = frozenset({"1", "true", "yes", "on"})


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """True when `CI` (in `environ`, default the process environment) is a truthy value."""
    value = (os.environ if environ is None else environ).get(CI_VARIABLE, "")
    return value.strip().lower() in TRUTHY


def missing_tool(message: str) -> NoReturn:
    """Fail in CI, skip elsewhere: the test cannot run because `message` says what is missing."""
    if in_ci():
        pytest.fail(f"{message} (CI={os.environ.get(CI_VARIABLE)!r}: CI never skips)")
    pytest.skip(message)
