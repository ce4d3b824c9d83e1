"""Building and listing the `pox/<name>` images: the cache decision, the import, what is reported.

`build_image` reuses a build when the engine or the cache holds one with the same recipe digest
made from the same Debian archive state (`force` always rebuilds: what an auditor does);
otherwise it builds the root filesystem (`rootfs`), imports the tar into the engine with the
job user, environment and `org.pox.*` labels, checks that the engine kept the tar byte for byte
(the image's only layer digest is the tar's SHA-256), and records the build in the cache.
`list_images` reports every image the engine holds with the `org.pox.image` label.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pox_executor.enclave import engine
from pox_executor.enclave.engine import JOB_UID
from pox_executor.enclave.images import cache
from pox_executor.enclave.images.debian import LockUnsatisfiable, gather_debs, write_local_repo
from pox_executor.enclave.images.lockfile import ImageLock, read_lock
from pox_executor.enclave.images.recipes import (
    IMAGE_REPOSITORY,
    Recipe,
    constraints_file,
    images_dir,
    load_recipe,
    lock_path,
    mirrors,
    recipe_digest,
    requirements_file,
)
from pox_executor.enclave.images.rootfs import build_rootfs
from pox_executor.enclave.images.steps import Log, quiet
from pox_executor.enclave.images.store import (
    SourceStore,
    StoredInput,
    default_store,
    manifest_inputs,
    open_store,
)
from pox_executor.enclave.images.wheels import ensure_wheels, python_inputs
from pox_executor.errors import EnclaveError, UsageError
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
    offline_from: Path | None = None,
    store: Path | None = None,
) -> ImageInfo:
    """Build (or reuse) `pox/<name>` from its lock; return its measurement, size and contents.

    Reuse happens when the engine or the cache holds a build with the same recipe digest (which
    covers the lock); `force` always rebuilds (what an auditor does). Online, the locked files
    come from the source store `store` (default `default_store()`) or the apt sources, and every
    input is archived in that store. With `offline_from` (a store folder or exported file) they
    come from there alone, and the build always runs.
    """
    recipe = load_recipe(name)
    with cache.build_lock(name):
        if offline_from is not None:
            with open_store(offline_from) as source:
                return build_locked(
                    recipe, source, online=False, force=True, log=log, write_expected=write_expected
                )
        target = SourceStore(store or default_store())
        return build_locked(
            recipe, target, online=True, force=force, log=log, write_expected=write_expected
        )


def build_images(names: Iterable[str], **kwargs: Any) -> list[ImageInfo]:
    return [build_image(name, **kwargs) for name in names]


def build_locked(
    recipe: Recipe,
    store: SourceStore,
    *,
    online: bool,
    force: bool,
    log: Log,
    write_expected: bool,
) -> ImageInfo:
    """One build under the image's build lock (callers hold it)."""
    name = recipe.name
    lock_file = lock_path(recipe)
    lock = read_lock(lock_file, name)
    digest = recipe_digest(recipe)
    entry = cache.build_entry(name, digest)
    record = cache.load_record(entry)
    if online and not force and record is not None:
        reused = _reuse(recipe, entry, record, digest, log)
        if reused is not None:
            return _maybe_write_expected(recipe, reused, write_expected)
    started = time.monotonic()
    manifest = None if online else _offline_manifest(store, name, digest)
    debs = gather_debs(
        lock.debs,
        store,
        mirrors() if online else None,
        image=name,
        lock_path=str(lock_file),
        log=log,
    )
    recorded: str | None = None
    if online:
        wheels = ensure_wheels(log)
    else:
        assert manifest is not None
        recorded = str(manifest.get("measurement", "")) or None
        wheels = ensure_wheels(
            log,
            find_links=_materialize_python(store, manifest, entry / "offline-python"),
            target=entry / "offline-wheels",
        )
    repo_line = write_local_repo(lock.debs, debs, entry / "repo")
    try:
        measurement, packages, tar_path = build_rootfs(
            recipe, lock, repo_line, wheels / "wheels", entry, log
        )
    finally:
        for scratch in ("repo", "offline-python", "offline-wheels"):
            shutil.rmtree(entry / scratch, ignore_errors=True)
    if online:
        _archive_inputs(store, recipe, lock, digest, measurement, wheels)
    _import(recipe, tar_path, measurement, digest)
    seconds = round(time.monotonic() - started, 1)
    record = {
        "name": name,
        "measurement": measurement,
        "recipe_digest": digest,
        "packages": packages,
        "build_seconds": seconds,
        "size_bytes": tar_path.stat().st_size,
        "offline": not online,
    }
    cache.save_record(entry, record)
    cache.prune_other_builds(entry)
    inspected = engine.inspect_image(recipe.tag)
    if inspected is None:
        raise EnclaveError(f"{recipe.tag} was imported but the engine does not list it")
    log(f"{name}: built {measurement[:16]} in {seconds:.0f} s")
    info = _info_from_inspect(inspected, build_seconds=seconds, cached=False)
    if recorded is not None:
        info.extra["recorded_measurement"] = recorded
    return _maybe_write_expected(recipe, info, write_expected)


def _reuse(
    recipe: Recipe, entry: Path, record: dict[str, Any], digest: str, log: Log
) -> ImageInfo | None:
    measurement = str(record["measurement"])
    inspected = engine.inspect_image(recipe.tag)
    if inspected is None or engine.measurement_of(inspected) != measurement:
        tar_path = entry / "rootfs.tar"
        if not (tar_path.is_file() and sha256_file(tar_path) == measurement):
            return None
        log(f"{recipe.name}: importing cached root filesystem {measurement[:16]}")
        _import(recipe, tar_path, measurement, digest)
        inspected = engine.inspect_image(recipe.tag)
        if inspected is None:
            return None
    log(f"{recipe.name}: up to date ({measurement[:16]}, recipe {digest[:12]})")
    return _info_from_inspect(inspected, cached=True)


def _offline_manifest(store: SourceStore, name: str, digest: str) -> dict[str, Any]:
    manifest = store.read_manifest(name, digest)
    if manifest is None:
        held = [p.stem for p in store.manifests()]
        raise UsageError(
            f"source store {store.root} holds no inputs of pox/{name} at recipe digest "
            f"{digest[:16]}... (the recipe, lock and requirement files of this checkout)",
            hint="it holds: "
            + (", ".join(held) if held else "nothing")
            + "; check out the commit the store was made from",
        )
    return manifest


def _materialize_python(store: SourceStore, manifest: dict[str, Any], folder: Path) -> Path:
    """The manifest's Python files, checked against their SHA-256, under their own names."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    missing: list[str] = []
    for item in manifest_inputs(manifest):
        if item.kind == "deb":
            continue
        blob = store.verified_blob(item.sha256)
        if blob is None:
            missing.append(f"  {item.filename} (sha256 {item.sha256[:16]}...)")
            continue
        shutil.copyfile(blob, folder / item.filename)
    if missing:
        raise LockUnsatisfiable(
            f"source store {store.root} lacks {len(missing)} Python file(s) of the lock:\n"
            + "\n".join(missing)
        )
    return folder


def _archive_inputs(
    store: SourceStore,
    recipe: Recipe,
    lock: ImageLock,
    digest: str,
    measurement: str,
    wheels: Path,
) -> None:
    """Every input of the build into the store, with the manifest that names them."""
    inputs = [StoredInput("deb", d.filename, d.sha256, d.size_bytes) for d in lock.debs]
    for kind, path in python_inputs(wheels):
        sha = store.put_file(path)
        inputs.append(StoredInput(kind, path.name, sha, path.stat().st_size))
    files = {
        "recipe.json": (recipe.directory / "recipe.json").read_text(),
        "packages.lock": lock_path(recipe).read_text(),
        "snakemake-requirements.txt": requirements_file().read_text(),
        "build-constraints.txt": constraints_file().read_text(),
    }
    store.write_manifest(
        recipe.name,
        digest,
        {
            "image": recipe.name,
            "recipe_digest": digest,
            "measurement": measurement,
            "files": files,
            "inputs": [i.to_json() for i in inputs],
        },
    )


def _maybe_write_expected(recipe: Recipe, info: ImageInfo, write: bool) -> ImageInfo:
    if not write:
        return info
    cache.write_expected(recipe, info.measurement, info.recipe_digest)
    return replace(info, expected=info.measurement)


def _import(recipe: Recipe, tar_path: Path, measurement: str, digest: str) -> None:
    import_rootfs(recipe.name, recipe, tar_path, measurement, digest)


def import_rootfs(
    name: str, recipe: Recipe | None, tar_path: Path, measurement: str, digest: str
) -> None:
    """`docker import` the tar as `pox/<name>:latest` and `:<measurement prefix>`; check it.

    `recipe` gives the image's extra environment; None for an image whose recipe this checkout
    does not have (an imported archive).
    """
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(recipe.env if recipe is not None else {}),
    }
    changes = [f"ENV {key}={env[key]}" for key in sorted(env)]
    changes += [
        f"USER {JOB_UID}:{JOB_UID}",
        "WORKDIR /tmp",
        f"LABEL {LABEL_NAME}={name}",
        f"LABEL {LABEL_MEASUREMENT}={measurement}",
        f"LABEL {LABEL_RECIPE}={digest}",
    ]
    repository = f"{IMAGE_REPOSITORY}/{name}"
    tag = f"{repository}:latest"
    previous = engine.inspect_image(tag)
    engine.import_image(tar_path, repository, "latest", changes)
    engine.tag_image(tag, repository, measurement[:16])
    inspected = engine.inspect_image(tag)
    if inspected is None or engine.measurement_of(inspected) != measurement:
        got = engine.measurement_of(inspected) if inspected else "nothing"
        raise EnclaveError(
            f"docker import of {name}: layer digest {got} is not the tar's {measurement}"
        )
    if previous is not None and previous.get("Id") != inspected.get("Id"):
        # The superseded import; left in place if a container still uses it or it is tagged.
        engine.remove_image(str(previous["Id"]))
