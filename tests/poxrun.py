"""Shared by the plugin and audit suites: run a workflow under `--executor pox`, call the `pox`
CLI, and read a run bundle back as plain records, recomputing digests independently of PoX.

Everything here starts real processes (Snakemake, bubblewrap, the `pox` command); nothing is
mocked. A missing tool is a test failure, never a skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

ATTESTATIONS = "attestations.intoto.jsonl"
JOB_PREDICATE = "https://slsa.dev/provenance/v1"


def require_sandbox_tools() -> None:
    missing = [tool for tool in ("bwrap", "unshare") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's 'bubblewrap' and 'util-linux' "
            "(scripts/install-system-packages.sh does)"
        )


def run_snakemake(
    workdir: Path, *args: str, timeout_s: float = 300, expect_ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """`snakemake --executor pox --cores 2 ARGS` in `workdir`."""
    require_sandbox_tools()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "2", *args],
        cwd=workdir,
        env=snakemake_env(workdir),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if expect_ok:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def snakemake_env(workdir: Path, *, chain: str = "none") -> dict[str, str]:
    # Snakemake caches sources under XDG_CACHE_HOME; keep each workflow's cache to itself.
    # The default chain profile is `local` (a devnet that starts itself); suites that do not
    # test the chain pass `none` (as `--pox-chain none` would) so they stay fast and start no
    # node. tests/chain passes its own devnet explicitly.
    return dict(
        os.environ,
        XDG_CACHE_HOME=str(workdir.parent / f".{workdir.name}-cache"),
        SNAKEMAKE_POX_CHAIN=chain,
    )


def pox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `pox` command line, as an auditor runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def bundles(workdir: Path) -> list[Path]:
    return sorted((workdir / ".pox" / "runs").iterdir())


def only_bundle(workdir: Path) -> Path:
    found = bundles(workdir)
    assert len(found) == 1, f"expected one run bundle, found {[p.name for p in found]}"
    return found[0]


def run_json(bundle: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((bundle / "run.json").read_text())
    return result


def sha256_of(path: Path) -> str:
    """A file's SHA-256, or a directory's: SHA-256 of its `sha256sum`-style sorted manifest
    (without Snakemake's `.snakemake_timestamp` marker)."""
    if path.is_dir():
        files = {
            p.relative_to(path).as_posix(): p
            for p in path.rglob("*")
            if p.is_file() and p.name != ".snakemake_timestamp"
        }
        manifest = "".join(f"{sha256_of(files[rel])}  {rel}\n" for rel in sorted(files))
        return hashlib.sha256(manifest.encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Record:
    """One line of attestations.intoto.jsonl, decoded without PoX's own reader."""

    line: bytes

    @cached_property
    def envelope(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.line)
        return result

    @cached_property
    def statement(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(base64.b64decode(self.envelope["payload"]))
        return result

    @property
    def digest(self) -> str:
        """The envelope digest children cite: SHA-256 of the line without its newline."""
        return hashlib.sha256(self.line).hexdigest()

    @property
    def build(self) -> dict[str, Any]:
        result: dict[str, Any] = self.statement["predicate"]["buildDefinition"]
        return result

    @property
    def internal(self) -> dict[str, Any]:
        result: dict[str, Any] = self.build["internalParameters"]
        return result

    @property
    def rule(self) -> str:
        return str(self.build["externalParameters"]["rule"])

    @property
    def wildcards(self) -> dict[str, str]:
        return dict(self.build["externalParameters"]["wildcards"])

    @property
    def attempt(self) -> int:
        return int(self.internal["attempt"])

    @property
    def status(self) -> str:
        return str(self.internal["status"])

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What identifies the job across runs and sessions (Snakemake's jobids do not)."""
        return self.rule, tuple(sorted(self.wildcards.items()))

    @property
    def subjects(self) -> dict[str, str]:
        return {s["name"]: s["digest"]["sha256"] for s in self.statement["subject"]}

    def dependencies(self, kind: str) -> list[dict[str, Any]]:
        return [
            d
            for d in self.build["resolvedDependencies"]
            if d.get("annotations", {}).get("pox.kind") == kind
        ]

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self.dependencies("input")}

    @property
    def parent_envelopes(self) -> set[str]:
        return {d["digest"]["sha256"] for d in self.dependencies("parent-envelope")}

    @property
    def evidence(self) -> dict[str, Any]:
        for byproduct in self.statement["predicate"]["runDetails"]["byproducts"]:
            if byproduct["name"] == "pox:tee-evidence":
                result: dict[str, Any] = byproduct["annotations"]
                return result
        raise AssertionError(f"no TEE evidence in the record of {self.rule}")


def read_records(bundle: Path) -> list[Record]:
    """The job records of the log (its session openings and closings left out)."""
    data = (bundle / ATTESTATIONS).read_bytes()
    records = [Record(line) for line in data.split(b"\n") if line]
    return [r for r in records if r.statement["predicateType"] == JOB_PREDICATE]
