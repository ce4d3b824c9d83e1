"""The plugin catalog's pages (docs/intro.md, docs/further.md) document every executor setting."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pox_executor.plugin import ExecutorSettings

DOCS = Path(__file__).resolve().parents[1] / "docs"
SETTINGS = [setting for setting in dataclasses.fields(ExecutorSettings) if setting.init]


def flag(setting: dataclasses.Field[object]) -> str:
    """The command-line flag Snakemake derives from a setting: field `x_y` -> `--pox-x-y`."""
    return "--pox-" + setting.name.replace("_", "-")


def shown(default: object) -> str:
    """How the settings table writes a default: `none` for None, `off`/`on` for flags."""
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


@pytest.mark.parametrize("setting", SETTINGS, ids=[setting.name for setting in SETTINGS])
def test_further_md_lists_the_setting(setting: dataclasses.Field[object]) -> None:
    text = (DOCS / "further.md").read_text()
    row = re.search(rf"^\| `{re.escape(flag(setting))}\b[^|]*\|([^\n]*)$", text, re.MULTILINE)
    assert row, f"docs/further.md has no settings-table row for {flag(setting)}"
    documented_default = row.group(1).split("|")[0].strip().strip("`")
    assert documented_default == shown(setting.default), f"docs/further.md: {flag(setting)} default"
    if setting.metadata.get("env_var"):
        variable = "SNAKEMAKE_POX_" + setting.name.upper()
        assert variable in row.group(1), f"docs/further.md: {flag(setting)} lacks {variable}"


def test_catalog_pages_exist_and_say_something() -> None:
    for page in ("intro.md", "further.md"):
        assert len((DOCS / page).read_text().split()) > 50, page
