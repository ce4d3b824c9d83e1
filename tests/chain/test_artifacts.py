"""The committed contract artifacts are what the contracts compile to, for bloxberg's EVM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chain_tools import forge_path, require_tool

from pox_executor.chain.artifacts import (
    ARTIFACTS_DIR,
    EXPORTED_CONTRACTS,
    ArtifactError,
    load_artifact,
)

ROOT = Path(__file__).resolve().parents[2]


def test_committed_artifacts_equal_a_fresh_build() -> None:
    require_tool(forge_path() is not None, "forge")
    result = subprocess.run(
        [sys.executable, str(ROOT / "contracts" / "scripts" / "export-artifacts.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(EXPORTED_CONTRACTS))
def test_artifacts_target_istanbul_with_pinned_solc(name: str) -> None:
    import json

    data = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    assert data["evmVersion"] == "istanbul"
    assert data["compiler"].startswith("0.8.28+")
    assert load_artifact(name).deployed_code(), "has runtime code"


def test_missing_artifact_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"NoSuchContract\.json"):
        load_artifact("NoSuchContract", tmp_path)
    (tmp_path / "Broken.json").write_text("{}")
    with pytest.raises(ArtifactError, match="'abi' missing"):
        load_artifact("Broken", tmp_path)
