"""The build cache and the reference files of enclave images.

Builds are cached under `POX_IMAGE_CACHE` (default `/var/cache/pox-images`, outside the
repository): `<cache>/<name>/<recipe digest>/` holds `build.json` (measurement, archive state,
package manifest, build time) and `rootfs.tar`; only the newest build of each image is kept.
`<cache>/<name>/.lock` serializes the builds of one image on this machine; `folder_lock` guards
what builds of several images share (the wheels under `wheels-v2/`). Beside each recipe,
`expected-measurement` records the measurement of a build of its `packages.lock` (see
`lockfile`); `expected_for_container` gives it to `pox verify`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pox_executor.enclave.images.recipes import IMAGE_REPOSITORY, Recipe, images_dir, recipe_names

DEFAULT_CACHE = Path("/var/cache/pox-images")
EXPECTED_FILE = "expected-measurement"
PACKAGES_FILE = "packages.lock"


def cache_dir() -> Path:
    return Path(os.environ.get("POX_IMAGE_CACHE") or DEFAULT_CACHE)


def build_entry(name: str, recipe_digest: str) -> Path:
    """The cache folder of one build: `<cache>/<name>/<recipe digest>`."""
    return cache_dir() / name / recipe_digest


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """One build of an image at a time on this machine."""
    with folder_lock(cache_dir() / name / ".lock"):
        yield


@contextmanager
def folder_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive `flock` on `lock_path` (created if needed) for the duration of the block.

    Held by a process, released when it exits, however it exits: a crashed build never leaves
    a stale lock behind.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load_record(entry: Path) -> dict[str, Any] | None:
    """The `build.json` of a cached build, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((entry / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return dict(data) if isinstance(data, dict) else None


def save_record(entry: Path, record: dict[str, Any]) -> None:
    (entry / "build.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def prune_other_builds(keep: Path) -> None:
    """Remove every cached build of the image except `keep`."""
    for sibling in keep.parent.iterdir():
        if sibling.name.startswith("."):
            continue
        if sibling != keep and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)


def cached_manifest(name: str, digest: str) -> list[str]:
    """The package manifest of the cached build, empty when the image was built elsewhere."""
    path = cache_dir() / name / digest / "build.json"
    try:
        return [str(p) for p in json.loads(path.read_text())["packages"]]
    except (OSError, ValueError, KeyError):
        return []


def read_expected(path: Path) -> str | None:
    """The measurement in an `expected-measurement` file (the first non-comment word)."""
    if not path.is_file():
        return None
    return read_expected_text(path.read_text())


def read_expected_text(text: str | None) -> str | None:
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.split()[0]
    return None


def write_expected(recipe: Recipe, measurement: str, recipe_digest: str) -> None:
    """Record a build of the current lock as the recipe's reference `expected-measurement`."""
    (recipe.directory / EXPECTED_FILE).write_text(
        f"{measurement}\n"
        f"# sha256 of the root filesystem tar of pox/{recipe.name} (its only layer digest),\n"
        f"# built by `pox images build {recipe.name}` from recipe digest {recipe_digest}\n"
        f"# with exactly the packages in {PACKAGES_FILE}.\n"
    )


def expected_for_container(container: str) -> tuple[str, str] | None:
    """(name, committed expected measurement) when a rule's `container:` names a pox image.

    `pox/python`, `pox/python:latest` or `docker://pox/python` name the recipe `python`; the
    expected measurement is the one in this checkout's `enclave_images/python`. None otherwise.
    """
    reference = container.strip().removeprefix("docker://")
    repository = reference.split("@", 1)[0].rsplit(":", 1)[0] if "/" in reference else reference
    prefix = f"{IMAGE_REPOSITORY}/"
    if not repository.startswith(prefix):
        return None
    name = repository.removeprefix(prefix)
    if name not in recipe_names():
        return None
    expected = read_expected(images_dir() / name / EXPECTED_FILE)
    return (name, expected) if expected else None
