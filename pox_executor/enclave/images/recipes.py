"""Enclave image recipes: `enclave_images/<name>/recipe.json` and the digest of what a build uses.

A recipe names the Debian packages, the version check and extra environment of one image. The
recipe digest is a SHA-256 over everything that decides an image's content: the recipe, its
`packages.lock`, the wheel lock, the build constraints, the dpkg path filters,
`SOURCE_DATE_EPOCH` and the builder version.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from pox_executor.errors import UsageError

BUILDER_VERSION = 3  # 3: built from the locked files only, through a local repository
SOURCE_DATE_EPOCH = 1700000000  # 2023-11-14T22:13:20Z; every file in an image has this mtime
IMAGE_REPOSITORY = "pox"
DEFAULT_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
DPKG_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)


@dataclass(frozen=True)
class Recipe:
    """One `enclave_images/<name>/recipe.json`: what goes into the image."""

    name: str
    description: str
    packages: tuple[str, ...]
    check: tuple[str, ...]
    env: dict[str, str]
    directory: Path

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}/{self.name}:latest"


def images_dir() -> Path:
    """The `enclave_images/` folder: `POX_ENCLAVE_IMAGES`, else the one beside the package."""
    override = os.environ.get("POX_ENCLAVE_IMAGES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "enclave_images"


def mirrors() -> tuple[str, ...]:
    """apt source lines; `POX_DEBIAN_MIRRORS` (separated by `|`) overrides, e.g. a snapshot."""
    override = os.environ.get("POX_DEBIAN_MIRRORS")
    if override:
        return tuple(line.strip() for line in override.split("|") if line.strip())
    return DEFAULT_MIRRORS


def recipe_names() -> list[str]:
    root = images_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/recipe.json"))


def load_recipe(name: str) -> Recipe:
    path = images_dir() / name / "recipe.json"
    if not path.is_file():
        raise UsageError(
            f"no enclave image recipe named {name!r} (looked for {path})",
            hint=f"available: {', '.join(recipe_names()) or 'none'}",
        )
    try:
        data = json.loads(path.read_text())
        packages = tuple(str(p) for p in data["packages"])
        check = tuple(str(c) for c in data["check"])
        env = {str(k): str(v) for k, v in dict(data.get("env", {})).items()}
        description = str(data.get("description", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: malformed recipe ({exc})") from exc
    if "python3" not in packages:
        raise UsageError(f"{path}: every image needs python3 (jobs run `python3 -m snakemake`)")
    return Recipe(name, description, packages, check, env, path.parent)


def requirements_file() -> Path:
    return images_dir() / "snakemake-requirements.txt"


def constraints_file() -> Path:
    return images_dir() / "build-constraints.txt"


def lock_path(recipe: Recipe) -> Path:
    return recipe.directory / "packages.lock"


def recipe_digest(recipe: Recipe) -> str:
    """SHA-256 over everything that decides the image's content: recipe, lock and builder.

    The apt sources are not part of it: a build installs the locked files, checked by SHA-256,
    wherever they came from.
    """
    lock = lock_path(recipe)
    document: dict[str, Any] = {
        "builder": BUILDER_VERSION,
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "recipe": (recipe.directory / "recipe.json").read_text(),
        "lock": lock.read_text() if lock.is_file() else "",
        "requirements": requirements_file().read_text(),
        "constraints": constraints_file().read_text(),
        "dpkg_filters": list(DPKG_FILTERS),
    }
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()
