"""Shared by the Docker integration suites: a running engine and the four enclave images.

`require_docker()` starts the engine through `scripts/start-dockerd.sh`; where that is impossible
the test is skipped on a developer machine and FAILS in CI (`ci_mode.in_ci()`), never skipped.
`images()` builds the images once per session through `enclave.images.build_image`, whose cache
(POX_IMAGE_CACHE, default /var/cache/pox-images) keeps builds across sessions while the recipe
and its lock are unchanged. A build installs exactly the committed `packages.lock`; on a machine
whose source store lacks a locked file that the Debian archive no longer has (Debian published
an update since the lock was committed), the suites still need images: the session then re-locks
a copy of `enclave_images/` against the archive (POX_ENCLAVE_IMAGES points at it for the rest
of the session) and says so. The reproducibility test compares against what that session built
and archived itself, never against the moving archive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from ci_mode import missing_tool

from pox_executor.enclave.images import ImageInfo, build_image, recipe_names
from pox_executor.enclave.images.debian import LockUnsatisfiable
from pox_executor.enclave.images.relock import lock_image

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
            try:
                _BUILT[name] = build_image(name)
            except LockUnsatisfiable as exc:
                _relocked_copy()
                print(f"\nthe committed lock of pox/{name} cannot be had; re-locking a copy: {exc}")
                lock_image(name)
                _BUILT[name] = build_image(name)
    return {n: _BUILT[n] for n in (names or tuple(recipe_names()))}


def _relocked_copy() -> None:
    if os.environ.get("POX_ENCLAVE_IMAGES"):
        return
    copy = Path(tempfile.mkdtemp(prefix="pox-relocked-images-")) / "enclave_images"
    shutil.copytree(REPO / "enclave_images", copy)
    os.environ["POX_ENCLAVE_IMAGES"] = str(copy)
