"""Shared by the Docker integration suites: a running engine and the four enclave images.

`require_docker()` starts the engine through `scripts/start-dockerd.sh`; where that is impossible
the test is skipped on a developer machine and FAILS in CI (`ci_mode.in_ci()`), never skipped.
`images()` builds the images once per session through `enclave.images.build_image`, whose cache
(POX_IMAGE_CACHE, default /var/cache/pox-images) keeps builds across sessions while the recipe
and the Debian archive state are unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from ci_mode import missing_tool

from pox_executor.enclave.images import ImageInfo, build_image, recipe_names

REPO = Path(__file__).resolve().parents[1]


def unavailable(reason: str) -> None:
    missing_tool(f"a real Docker engine and image builds are needed: {reason}")


@cache
def _engine_problem() -> str | None:
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        return "docker.io is not installed (make setup)"
    if os.geteuid() != 0:
        return "the docker backend and image builds need root"
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "start-dockerd.sh")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        return f"scripts/start-dockerd.sh failed: {result.stderr.strip()[-500:]}"
    return None


def require_docker() -> None:
    problem = _engine_problem()
    if problem:
        unavailable(problem)


_BUILT: dict[str, ImageInfo] = {}


def images(*names: str) -> dict[str, ImageInfo]:
    """Build (or reuse) the named images, all four when none are named; once per session."""
    require_docker()
    if shutil.which("mmdebstrap") is None:
        unavailable("mmdebstrap is not installed (make setup)")
    for name in names or tuple(recipe_names()):
        if name not in _BUILT:
            _BUILT[name] = build_image(name)
    return {n: _BUILT[n] for n in (names or tuple(recipe_names()))}
