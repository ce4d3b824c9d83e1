"""Building and listing the `pox/<name>` images: the cache decision, the import, what is reported.

`build_image` reuses a build when the engine or the cache holds one with the same recipe digest
made from the same Debian archive state (`force` always rebuilds: what an auditor does);
otherwise it builds the root filesystem (`rootfs`), imports the tar into the engine with the
job user, environment and `org.pox.*` labels, checks that the engine kept the tar byte for byte
(the image's only layer digest is the tar's SHA-256), and records the build in the cache.
`list_images` reports every image the engine holds with the `org.pox.image` label.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.enclave import engine
from pox_executor.enclave.engine import JOB_UID
from pox_executor.enclave.images import cache
from pox_executor.enclave.images.archive import archive_state
from pox_executor.enclave.images.recipes import (
    IMAGE_REPOSITORY,
    Recipe,
    images_dir,
    load_recipe,
    mirrors,
    recipe_digest,
)
from pox_executor.enclave.images.rootfs import build_rootfs
from pox_executor.enclave.images.steps import Log, quiet
from pox_executor.errors import EnclaveError
from pox_executor.primitives import sha256_file

LABEL_NAME = "org.pox.image"
LABEL_MEASUREMENT = "org.pox.measurement"
LABEL_RECIPE = "org.pox.recipe-digest"


@dataclass(frozen=True)
class ImageInfo:
    """A built image: what `pox images list` prints and what the docker backend measures."""

    name: str
    tag: str
    measurement: str
    size_bytes: int
    recipe_digest: str
    packages: tuple[str, ...] = ()
    build_seconds: float | None = None
    cached: bool = False
    expected: str | None = None
    image_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def matches_expected(self) -> bool | None:
        return None if self.expected is None else self.expected == self.measurement

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "measurement": self.measurement,
            "image_digest": f"sha256:{self.measurement}",
            "size_bytes": self.size_bytes,
            "recipe_digest": self.recipe_digest,
            "packages": list(self.packages),
            "build_seconds": self.build_seconds,
            "cached": self.cached,
            "expected_measurement": self.expected,
            "image_id": self.image_id,
        }


def list_images() -> list[ImageInfo]:
    """Every `pox/<name>` image the engine holds, with its measurement and size."""
    infos: list[ImageInfo] = []
    for image_id in engine.image_ids_labelled(LABEL_NAME):
        inspected = engine.inspect_image(image_id)
        if inspected is None:
            continue
        infos.append(_info_from_inspect(inspected))
    return sorted(infos, key=lambda i: i.name)


def _info_from_inspect(inspected: dict[str, Any], **extra: Any) -> ImageInfo:
    labels = dict(inspected.get("Config", {}).get("Labels") or {})
    name = str(labels.get(LABEL_NAME, ""))
    tags = [str(t) for t in inspected.get("RepoTags") or []]
    expected_path = images_dir() / name / cache.EXPECTED_FILE
    expected = cache.read_expected(expected_path) if name else None
    manifest = cache.cached_manifest(name, str(labels.get(LABEL_RECIPE, "")))
    return ImageInfo(
        name=name,
        tag=next((t for t in tags if t.endswith(":latest")), tags[0] if tags else ""),
        measurement=engine.measurement_of(inspected),
        size_bytes=int(inspected.get("Size", 0)),
        recipe_digest=str(labels.get(LABEL_RECIPE, "")),
        packages=tuple(manifest),
        expected=expected,
        image_id=str(inspected.get("Id", "")),
        **extra,
    )


def build_image(
    name: str,
    *,
    force: bool = False,
    log: Log = quiet,
    write_expected: bool = False,
) -> ImageInfo:
    """Build (or reuse) `pox/<name>`; return its measurement, size and contents.

    Reuse happens when the engine or the cache holds a build with the same recipe digest made
    from the same archive state; `force` always rebuilds (what an auditor does).
    """
    recipe = load_recipe(name)
    with cache.build_lock(name):
        return _build_locked(recipe, force=force, log=log, write_expected=write_expected)


def build_images(names: Iterable[str], **kwargs: Any) -> list[ImageInfo]:
    return [build_image(name, **kwargs) for name in names]


def _build_locked(recipe: Recipe, *, force: bool, log: Log, write_expected: bool) -> ImageInfo:
    name = recipe.name
    lines = mirrors()
    digest = recipe_digest(recipe, lines)
    state = archive_state(lines)
    entry = cache.build_entry(name, digest)
    record = cache.load_record(entry)
    reusable = (
        record is not None and not force and (state is None or record.get("archive_state") == state)
    )
    if reusable and record is not None:
        measurement = str(record["measurement"])
        inspected = engine.inspect_image(recipe.tag)
        if inspected is None or engine.measurement_of(inspected) != measurement:
            tar_path = entry / "rootfs.tar"
            if tar_path.is_file() and sha256_file(tar_path) == measurement:
                log(f"{name}: importing cached root filesystem {measurement[:16]}")
                _import(recipe, tar_path, measurement, digest)
                inspected = engine.inspect_image(recipe.tag)
            else:
                reusable = False
        if reusable and inspected is not None:
            log(f"{name}: up to date ({measurement[:16]}, recipe {digest[:12]})")
            info = _info_from_inspect(inspected, cached=True)
            return _maybe_write_expected(recipe, info, record, write_expected)
    started = time.monotonic()
    measurement, packages, tar_path = build_rootfs(recipe, entry, log)
    _import(recipe, tar_path, measurement, digest)
    seconds = round(time.monotonic() - started, 1)
    record = {
        "name": name,
        "measurement": measurement,
        "recipe_digest": digest,
        "archive_state": state,
        "packages": packages,
        "build_seconds": seconds,
        "size_bytes": tar_path.stat().st_size,
    }
    cache.save_record(entry, record)
    cache.prune_other_builds(entry)
    inspected = engine.inspect_image(recipe.tag)
    if inspected is None:
        raise EnclaveError(f"{recipe.tag} was imported but the engine does not list it")
    log(f"{name}: built {measurement[:16]} in {seconds:.0f} s")
    info = _info_from_inspect(inspected, build_seconds=seconds, cached=False)
    return _maybe_write_expected(recipe, info, record, write_expected)


def _maybe_write_expected(
    recipe: Recipe, info: ImageInfo, record: dict[str, Any], write: bool
) -> ImageInfo:
    if not write:
        return info
    packages = [str(p) for p in record.get("packages", [])]
    cache.write_expected(recipe, info.measurement, info.recipe_digest, packages)
    return ImageInfo(**{**info.__dict__, "expected": info.measurement})


def _import(recipe: Recipe, tar_path: Path, measurement: str, digest: str) -> None:
    """`docker import` the tar as `pox/<name>:latest` and `:<measurement prefix>`; check it."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        **recipe.env,
    }
    changes = [f"ENV {key}={env[key]}" for key in sorted(env)]
    changes += [
        f"USER {JOB_UID}:{JOB_UID}",
        "WORKDIR /tmp",
        f"LABEL {LABEL_NAME}={recipe.name}",
        f"LABEL {LABEL_MEASUREMENT}={measurement}",
        f"LABEL {LABEL_RECIPE}={digest}",
    ]
    repository = f"{IMAGE_REPOSITORY}/{recipe.name}"
    previous = engine.inspect_image(recipe.tag)
    engine.import_image(tar_path, repository, "latest", changes)
    engine.tag_image(recipe.tag, repository, measurement[:16])
    inspected = engine.inspect_image(recipe.tag)
    if inspected is None or engine.measurement_of(inspected) != measurement:
        got = engine.measurement_of(inspected) if inspected else "nothing"
        raise EnclaveError(
            f"docker import of {recipe.name}: layer digest {got} is not the tar's {measurement}"
        )
    if previous is not None and previous.get("Id") != inspected.get("Id"):
        # The superseded import; left in place if a container still uses it or it is tagged.
        engine.remove_image(str(previous["Id"]))
