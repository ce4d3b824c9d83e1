"""Images archived by measurement: export to one file, import from it, fetch from a store.

An image export is an uncompressed tar with two members: `pox-image.json` (format, name,
measurement, recipe digest, packages) and `rootfs.tar`, the measured root filesystem tar itself.
`import_image_file` recomputes the SHA-256 of `rootfs.tar` and refuses the file when it is not
the measurement the export names (or the one the caller asked for); only then does the engine
import it, and the import checks again that the engine's layer digest is that measurement. A
store (`store.SourceStore`) holds archived images as `blobs/sha256/<measurement>` with
`images/<measurement>.json`; `fetch_image` imports from there by measurement.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from pox_executor.enclave import engine
from pox_executor.enclave.images import cache
from pox_executor.enclave.images.build import LABEL_NAME, LABEL_RECIPE, import_rootfs
from pox_executor.enclave.images.recipes import load_recipe, recipe_names
from pox_executor.enclave.images.store import SourceStore
from pox_executor.errors import UsageError, VerificationError
from pox_executor.primitives import sha256_file

FORMAT = "pox-image-export/1"
META = "pox-image.json"
ROOTFS = "rootfs.tar"


def _locate(image: str) -> tuple[dict[str, Any], str]:
    """The engine's inspect document and the measurement of `image` (name, tag or measurement)."""
    candidates = [image]
    if image in recipe_names():
        candidates.insert(0, load_recipe(image).tag)
    if len(image) == 64:
        candidates.insert(0, f"pox/{_name_of_measurement(image)}:{image[:16]}")
    for ref in candidates:
        inspected = engine.inspect_image(ref)
        if inspected is not None:
            return inspected, engine.measurement_of(inspected)
    raise UsageError(
        f"the engine holds no image {image!r}",
        hint="build it (pox images build NAME) or import it (pox images import FILE)",
    )


def _name_of_measurement(measurement: str) -> str:
    for info_id in engine.image_ids_labelled(LABEL_NAME):
        inspected = engine.inspect_image(info_id)
        if inspected is not None and engine.measurement_of(inspected) == measurement:
            return str(inspected["Config"]["Labels"][LABEL_NAME])
    return "unknown"


def _rootfs_of(inspected: dict[str, Any], measurement: str, scratch: Path) -> Path:
    """The measured tar: from the build cache when it is there, else from the engine."""
    labels = dict(inspected.get("Config", {}).get("Labels") or {})
    name, digest = str(labels.get(LABEL_NAME, "")), str(labels.get(LABEL_RECIPE, ""))
    cached = cache.build_entry(name, digest) / "rootfs.tar" if name and digest else None
    if cached is not None and cached.is_file() and sha256_file(cached) == measurement:
        return cached
    return _save_layer(str(inspected["Id"]), measurement, scratch)


def _save_layer(image_id: str, measurement: str, scratch: Path) -> Path:
    """The layer tar whose SHA-256 is `measurement`, out of the engine's `docker save` stream."""
    saved = scratch / "saved.tar"
    with open(saved, "wb") as out:
        for chunk in engine.client().get_image(image_id):
            out.write(chunk)
    target = scratch / ROOTFS
    with tarfile.open(saved) as archive:
        for member in archive:
            if not member.isfile() or not (
                member.name.endswith("/layer.tar") or member.name.startswith("blobs/sha256/")
            ):
                continue
            source = archive.extractfile(member)
            if source is None:
                continue
            digest = hashlib.sha256()
            with open(target, "wb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() == measurement:
                saved.unlink()
                return target
    raise VerificationError(
        f"the engine's saved image {image_id[:19]} holds no layer with sha256 {measurement}"
    )


def export_image(image: str, out: Path | None = None, store: Path | None = None) -> dict[str, Any]:
    """Write `image` as one export file `out` and/or into the store `store`; its metadata."""
    if out is None and store is None:
        raise UsageError("say where to export: -o FILE or --store DIR")
    inspected, measurement = _locate(image)
    if len(inspected.get("RootFS", {}).get("Layers") or []) != 1:
        raise UsageError(f"{image} has several layers: only pox images (one layer) export")
    labels = dict(inspected.get("Config", {}).get("Labels") or {})
    meta = {
        "format": FORMAT,
        "name": str(labels.get(LABEL_NAME, "")),
        "measurement": measurement,
        "recipe_digest": str(labels.get(LABEL_RECIPE, "")),
        "packages": cache.cached_manifest(
            str(labels.get(LABEL_NAME, "")), str(labels.get(LABEL_RECIPE, ""))
        ),
    }
    with tempfile.TemporaryDirectory(prefix="pox-export-") as tmp:
        rootfs = _rootfs_of(inspected, measurement, Path(tmp))
        if out is not None:
            partial = out.with_name(out.name + ".partial")
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                body = json.dumps(meta, indent=2, sort_keys=True).encode() + b"\n"
                info = tarfile.TarInfo(META)
                info.size = len(body)
                tar.addfile(info, _bytes_reader(body))
                info = tarfile.TarInfo(ROOTFS)
                info.size = rootfs.stat().st_size
                with open(rootfs, "rb") as handle:
                    tar.addfile(info, handle)
            partial.rename(out)
        if store is not None:
            SourceStore(store).put_image(rootfs, meta)
    return meta


def _bytes_reader(body: bytes) -> io.BytesIO:
    return io.BytesIO(body)


def import_image_file(path: Path, *, expect: str | None = None, store: Path | None = None) -> str:
    """Check and import an export file; its measurement. A mismatch imports nothing."""
    try:
        archive = tarfile.open(path)
    except (OSError, tarfile.TarError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a tar file"
        raise UsageError(f"{path}: not a pox image export ({reason})") from exc
    with archive, tempfile.TemporaryDirectory(prefix="pox-import-") as tmp:
        members = {m.name: m for m in archive.getmembers()}
        if set(members) != {META, ROOTFS} or not all(m.isfile() for m in members.values()):
            raise UsageError(
                f"{path}: not a pox image export (members {sorted(members)}, expected "
                f"{META} and {ROOTFS})"
            )
        meta_file = archive.extractfile(members[META])
        try:
            meta = json.loads(meta_file.read() if meta_file else b"")
            claimed = str(meta["measurement"])
            name = str(meta["name"])
            str(meta["recipe_digest"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: unreadable {META} ({exc})") from exc
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name):
            raise UsageError(f"{path}: {META} names the image {name!r}, not a valid image name")
        if meta.get("format") != FORMAT:
            raise UsageError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
        rootfs = Path(tmp) / ROOTFS
        digest = hashlib.sha256()
        source = archive.extractfile(members[ROOTFS])
        assert source is not None
        with open(rootfs, "wb") as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != claimed:
            raise VerificationError(
                f"{path}: refused: its root filesystem has sha256 {actual}, but the export "
                f"names measurement {claimed} (the file was altered); nothing was imported"
            )
        if expect is not None and actual != expect:
            raise VerificationError(
                f"{path}: refused: it holds measurement {actual}, not the requested {expect}"
            )
        _import_checked(rootfs, meta)
        if store is not None:
            SourceStore(store).put_image(rootfs, meta)
    return actual


def _import_checked(rootfs: Path, meta: dict[str, Any]) -> None:
    name = str(meta["name"])
    try:
        recipe = load_recipe(name)
    except UsageError:
        recipe = None
    import_rootfs(name, recipe, rootfs, str(meta["measurement"]), str(meta["recipe_digest"]))


def fetch_image(measurement: str, store: Path) -> dict[str, Any]:
    """Import the image archived in `store` under `measurement`; its metadata."""
    if len(measurement) != 64 or any(c not in "0123456789abcdef" for c in measurement):
        raise UsageError(f"{measurement!r} is not a measurement (64 lowercase hex digits)")
    source = SourceStore(store)
    meta = source.image_meta(measurement)
    if meta is None:
        raise UsageError(f"the store {store} holds no image with measurement {measurement}")
    blob = source.verified_blob(measurement)
    if blob is None:
        raise UsageError(f"the store {store} lists image {measurement} but lacks its file")
    with tempfile.TemporaryDirectory(prefix="pox-fetch-") as tmp:
        copy = Path(tmp) / ROOTFS  # the engine streams the file: give it one nobody alters
        shutil.copyfile(blob, copy)
        if sha256_file(copy) != measurement:
            raise VerificationError(f"the store's file of {measurement} changed while copied")
        _import_checked(copy, meta)
    return meta
