"""The content-addressed source store: every input of an image build, named by its SHA-256.

Layout of a store folder (default `<POX_IMAGE_CACHE>/store`, or `POX_SOURCE_STORE`):

    blobs/sha256/<hex>                   each .deb, wheel, sdist and build-tool wheel; and each
                                         archived image root filesystem (its hex = measurement)
    manifests/<image>-<recipe digest>.json   one per build: the recipe, lock, requirement and
                                         constraint files' text, the measurement, every input
                                         (kind, file name, sha256, size)
    images/<measurement>.json            an archived image: name, recipe digest, labels

Blobs are written through a temporary name and renamed once their digest is checked, so a store
never holds a file under the wrong name; readers check the digest again (`verified_blob`).
A store exports as one tar file (`export_store`) and opens from one (`open_store`).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pox_executor.enclave.images.cache import cache_dir
from pox_executor.errors import UsageError, VerificationError
from pox_executor.primitives import sha256_file


@dataclass(frozen=True)
class StoredInput:
    """One file a build used: a Debian package, a wheel or sdist, or a build tool."""

    kind: str  # "deb", "python", "build-tool"
    filename: str
    sha256: str
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "filename": self.filename,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
        }


def default_store() -> Path:
    return Path(os.environ.get("POX_SOURCE_STORE") or cache_dir() / "store")


class SourceStore:
    """A store folder; `put_*` add to it, `verified_blob` reads from it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256

    def has(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def put_file(self, source: Path, expected_sha256: str | None = None) -> str:
        """Copy `source` in under its SHA-256 (refused when it is not `expected_sha256`)."""
        target_dir = self.root / "blobs" / "sha256"
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".incoming-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            shutil.copyfile(source, tmp)
            digest = sha256_file(tmp)
            if expected_sha256 is not None and digest != expected_sha256:
                raise VerificationError(
                    f"{source}: sha256 is {digest}, not the expected {expected_sha256}"
                )
            if self.has(digest):
                tmp.unlink()
            else:
                tmp.chmod(0o644)
                tmp.rename(self.blob_path(digest))
        finally:
            tmp.unlink(missing_ok=True)
        return digest

    def verified_blob(self, sha256: str) -> Path | None:
        """The blob named `sha256`, None when absent; a blob whose content differs is an error."""
        path = self.blob_path(sha256)
        if not path.is_file():
            return None
        actual = sha256_file(path)
        if actual != sha256:
            raise VerificationError(
                f"source store {self.root}: blob {sha256} holds content with sha256 {actual} "
                "(the store was altered)"
            )
        return path

    # -- manifests ---------------------------------------------------------------------------

    def manifest_path(self, image: str, recipe_digest: str) -> Path:
        return self.root / "manifests" / f"{image}-{recipe_digest}.json"

    def write_manifest(self, image: str, recipe_digest: str, document: dict[str, Any]) -> Path:
        path = self.manifest_path(image, recipe_digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        tmp.rename(path)
        return path

    def read_manifest(self, image: str, recipe_digest: str) -> dict[str, Any] | None:
        path = self.manifest_path(image, recipe_digest)
        try:
            data = json.loads(path.read_text())
        except OSError:
            return None
        except ValueError as exc:
            raise UsageError(f"{path}: not JSON ({exc})") from exc
        return dict(data) if isinstance(data, dict) else None

    def manifests(self) -> list[Path]:
        folder = self.root / "manifests"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    # -- archived images ---------------------------------------------------------------------

    def image_meta_path(self, measurement: str) -> Path:
        return self.root / "images" / f"{measurement}.json"

    def put_image(self, rootfs_tar: Path, meta: dict[str, Any]) -> None:
        """Archive an image's root filesystem tar by its measurement, with its metadata."""
        self.put_file(rootfs_tar, expected_sha256=str(meta["measurement"]))
        path = self.image_meta_path(str(meta["measurement"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def image_meta(self, measurement: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.image_meta_path(measurement).read_text())
        except (OSError, ValueError):
            return None
        return dict(data) if isinstance(data, dict) else None


def manifest_inputs(manifest: dict[str, Any]) -> list[StoredInput]:
    return [
        StoredInput(str(i["kind"]), str(i["filename"]), str(i["sha256"]), int(i["size_bytes"]))
        for i in manifest.get("inputs", [])
    ]


def export_store(store: SourceStore, out: Path, manifests: Iterable[Path] | None = None) -> int:
    """Write the store (or only what the given manifests reference) as one tar; file count."""
    chosen = list(manifests) if manifests is not None else store.manifests()
    if not chosen:
        raise UsageError(f"source store {store.root} holds no build manifest to export")
    members: set[str] = set()
    for path in chosen:
        members.add(path.relative_to(store.root).as_posix())
        document = json.loads(path.read_text())
        for item in manifest_inputs(document):
            if not store.has(item.sha256):
                raise UsageError(
                    f"source store {store.root} lacks {item.filename} (sha256 {item.sha256}) "
                    f"that {path.name} references"
                )
            members.add(f"blobs/sha256/{item.sha256}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            info = tar.gettarinfo(str(store.root / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with open(store.root / name, "rb") as handle:
                tar.addfile(info, handle)
    tmp.rename(out)
    return len(members)


@contextmanager
def open_store(location: Path) -> Iterator[SourceStore]:
    """A store folder as is, or an exported store file unpacked into a temporary folder."""
    if location.is_dir():
        yield SourceStore(location)
        return
    if not location.is_file():
        raise UsageError(f"no source store at {location} (neither a folder nor an exported file)")
    try:
        archive = tarfile.open(location)
    except tarfile.TarError as exc:
        raise UsageError(f"{location}: not an exported source store (not a tar file)") from exc
    with archive, tempfile.TemporaryDirectory(prefix="pox-store-") as tmp:
        for member in archive.getmembers():
            parts = member.name.split("/")
            allowed = (len(parts) == 3 and parts[:2] == ["blobs", "sha256"]) or (
                len(parts) == 2 and parts[0] == "manifests" and parts[1].endswith(".json")
            )
            if not member.isfile() or not allowed or ".." in parts:
                raise UsageError(
                    f"{location}: unexpected member {member.name!r} (not a source store export)"
                )
        archive.extractall(tmp, filter="data")
        yield SourceStore(Path(tmp))
