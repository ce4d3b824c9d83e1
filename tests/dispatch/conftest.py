"""A real one-machine SLURM cluster for the dispatch tests: `scripts/slurm-up.sh` starts munged,
slurmctld and two slurmd (pox-node1, pox-node2) under a temporary directory for the session, and
`scripts/slurm-down.sh` stops them. Missing SLURM or munge fails in CI, skips elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ci_mode import missing_tool

REPO = Path(__file__).resolve().parents[2]
SLURM_UP = REPO / "scripts" / "slurm-up.sh"
SLURM_DOWN = REPO / "scripts" / "slurm-down.sh"


@dataclass(frozen=True)
class Cluster:
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.state / "slurm.conf"))

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=120
        )

    def up(self) -> None:
        self.run("bash", str(SLURM_UP), str(self.state))

    def slurmd_pid(self, node: str) -> int:
        return int((self.state / "run" / f"slurmd-{node}.pid").read_text())


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(t) is None]
    if missing:
        missing_tool(
            f"{', '.join(missing)} not found: install Debian's slurm-wlm and munge "
            "(scripts/apt-packages.txt)"
        )
    if os.geteuid() != 0:
        missing_tool("the test SLURM cluster needs root (slurmd starts jobs as their user)")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.run("scancel", "--full", "--partition", "pox", check=False)
        cluster.run("bash", str(SLURM_DOWN), str(cluster.state), check=False)
