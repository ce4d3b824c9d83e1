"""The toolchain installed here is the one pyproject.toml pins for development.

`make lint`, `make typecheck` and the plugin and compat suites compare against these tools'
behaviour (ruff's formatting, mypy's checks, Snakemake's scheduling), so a drifted virtualenv
would make them pass or fail for reasons outside this repository.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def exact_pins() -> dict[str, str]:
    """Distribution name -> version for every `name==version` in the `dev` extra."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    pins: dict[str, str] = {}
    for line in project["optional-dependencies"]["dev"]:
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            pins[requirement.name] = specifiers[0].version
    return pins


def test_the_compared_toolchain_is_pinned_exactly() -> None:
    assert {"snakemake", "ruff", "mypy"} <= exact_pins().keys()


@pytest.mark.parametrize(("name", "pinned"), sorted(exact_pins().items()))
def test_installed_version_matches_the_pin(name: str, pinned: str) -> None:
    assert version(name) == pinned, (
        f"{name} {version(name)} is installed but pyproject.toml pins {pinned}: run `make setup`"
    )
