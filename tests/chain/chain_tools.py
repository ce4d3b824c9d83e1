"""Toolchain lookups for the chain tests (a plain module: `conftest` names are ambiguous)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ci_mode import missing_tool

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def require_tool(found: bool, name: str) -> None:
    """Skip locally, fail in CI, when a toolchain binary is missing."""
    if found:
        return
    missing_tool(f"{name} not installed: run `bash contracts/scripts/setup.sh`")


def forge_path() -> str | None:
    local = CONTRACTS_DIR / "node_modules" / ".bin" / "forge"
    return str(local) if local.exists() else shutil.which("forge")
