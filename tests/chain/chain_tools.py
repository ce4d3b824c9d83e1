"""Toolchain lookups for the chain tests (a plain module: `conftest` names are ambiguous)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def require_tool(found: bool, name: str) -> None:
    """Skip locally, fail in CI, when a toolchain binary is missing."""
    if found:
        return
    message = f"{name} not installed: run `bash contracts/scripts/setup.sh`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def forge_path() -> str | None:
    local = CONTRACTS_DIR / "node_modules" / ".bin" / "forge"
    return str(local) if local.exists() else shutil.which("forge")
