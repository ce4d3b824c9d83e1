#!/usr/bin/env python3
"""Build the contracts and export ABI + bytecode into pox_executor/chain/artifacts/.

    python contracts/scripts/export-artifacts.py          # build, then write the artifacts
    python contracts/scripts/export-artifacts.py --check  # build elsewhere, compare; 1 on drift

Owns only the export step; the artifact format lives in pox_executor.chain.artifacts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
sys.path.insert(0, str(ROOT))

from pox_executor.chain.artifacts import (  # noqa: E402
    ARTIFACTS_DIR,
    EXPORTED_CONTRACTS,
    artifact_from_forge_output,
    render_artifact,
)


def forge_binary() -> str:
    local = CONTRACTS / "node_modules" / ".bin" / "forge"
    return str(local) if local.exists() else "forge"


def build(out_dir: Path, cache_dir: Path) -> None:
    """Compile src/ only (no tests or scripts) into `out_dir`."""
    subprocess.run(
        [forge_binary(), "build", "--skip", "test", "--skip", "script",
         "--out", str(out_dir), "--cache-path", str(cache_dir)],
        cwd=CONTRACTS,
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def rendered(out_dir: Path) -> dict[str, str]:
    return {
        name: render_artifact(artifact_from_forge_output(name, out_dir))
        for name in EXPORTED_CONTRACTS
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with a fresh build only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pox-forge-") as tmp:
        build(Path(tmp) / "out", Path(tmp) / "cache")
        fresh = rendered(Path(tmp) / "out")
    if args.check:
        drift = [
            name for name, text in fresh.items()
            if not (ARTIFACTS_DIR / f"{name}.json").exists()
            or (ARTIFACTS_DIR / f"{name}.json").read_text(encoding="utf-8") != text
        ]  # fmt: skip
        for name in drift:
            print(
                f"{ARTIFACTS_DIR / (name + '.json')}: differs from a fresh build", file=sys.stderr
            )
        if drift:
            print("run `make contracts` and commit the artifacts", file=sys.stderr)
            return 1
        print(f"{len(fresh)} artifacts match a fresh build")
        return 0
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in fresh.items():
        (ARTIFACTS_DIR / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(fresh)} artifacts to {ARTIFACTS_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
