"""The data owner's steps: encrypt a file, push it to a store or an IPFS node, register it in
the DatasetRegistry, grant its key to the broker under a policy.

Each step reads and completes the dataset manifest (`manifest`); none overwrites a file the
user had: the ciphertext, its manifest and the key file are created exclusively, and a failed
encryption leaves none of them behind. The key file holds the base64 AES-256 key (iExec's
form), mode 0600; it is the only place the key is written.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pox_executor.datasets.encryption import (
    POX_FORMAT,
    CipherResult,
    encrypt_iexec_stream,
    encrypt_stream,
    new_key,
)
from pox_executor.datasets.manifest import (
    DatasetManifest,
    manifest_path_for,
    read_manifest,
    write_manifest,
)
from pox_executor.errors import PoxError, UsageError
from pox_executor.storage.kubo import KuboClient
from pox_executor.storage.localstore import LocalStore
from pox_executor.storage.unixfs import DEFAULT_PROFILE, FileImporter, get_profile

CIPHERTEXT_SUFFIX = ".pox-enc"
KEY_SUFFIX = ".key"


@dataclass(frozen=True)
class EncryptedDataset:
    ciphertext: Path
    manifest_path: Path
    key_path: Path
    manifest: DatasetManifest


class _TeeWriter:
    """Writes to a file and feeds the same bytes to the CID importer: one pass, two results."""

    def __init__(self, handle: Any, importer: FileImporter) -> None:
        self.handle = handle
        self.importer = importer

    def write(self, data: bytes) -> int:
        self.importer.write(data)
        written: int = self.handle.write(data)
        return written


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise UsageError(
                f"{path} already exists; PoX never overwrites it",
                hint="move it away or choose another --out",
            )


def write_key_file(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode("ascii") + "\n")


def read_key_file(path: str | Path) -> bytes:
    where = Path(path)
    try:
        text = where.read_text(encoding="ascii").strip()
        key = base64.b64decode(text, validate=True)
    except FileNotFoundError:
        raise UsageError(f"{where}: no key file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{where}: not a base64 key file ({exc})") from None
    if len(key) != 32:
        raise UsageError(f"{where}: the key is {len(key)} bytes, AES-256 needs 32")
    return key


def encrypt_dataset(
    source: str | Path,
    *,
    out: str | Path | None = None,
    key_path: str | Path | None = None,
    name: str | None = None,
    file_format: str = POX_FORMAT,
    profile: str = DEFAULT_PROFILE,
    key: bytes | None = None,
) -> EncryptedDataset:
    """Encrypt `source` into `out` (default `<source>.pox-enc`) with a fresh key (or `key`).

    Writes the ciphertext, its manifest (`<out>.json`: checksum, size, CID and profile) and
    the key file (default `<out>.key`, 0600). The CID is computed offline in the same pass.
    """
    src = Path(source)
    if not src.is_file():
        raise UsageError(f"{src}: no such file to encrypt")
    ciphertext = Path(out) if out else src.with_name(src.name + CIPHERTEXT_SUFFIX)
    manifest_path = manifest_path_for(ciphertext)
    key_file = Path(key_path) if key_path else ciphertext.with_name(ciphertext.name + KEY_SUFFIX)
    _refuse_existing(ciphertext, manifest_path, key_file)
    cid_profile = get_profile(profile)
    key = key if key is not None else new_key()
    importer = FileImporter(cid_profile)
    tmp = ciphertext.with_name(f".{ciphertext.name}.{os.getpid()}.tmp")
    try:
        with open(src, "rb") as reader, open(tmp, "xb") as handle:
            writer: Any = _TeeWriter(handle, importer)
            result: CipherResult
            if file_format == POX_FORMAT:
                result = encrypt_stream(reader, writer, key)
            elif file_format == "iexec-aes256cbc":
                result = encrypt_iexec_stream(reader, writer, key)
            else:
                raise UsageError(f"unknown dataset format {file_format!r}")
            handle.flush()
            os.fsync(handle.fileno())
        write_key_file(key_file, key)
        os.link(tmp, ciphertext)  # fails rather than replace a file created meanwhile
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.unlink()
    imported = importer.finish()
    manifest = DatasetManifest(
        name=name or src.name,
        format=result.format,
        ciphertext=ciphertext.name,
        checksum=result.checksum,
        size=result.ciphertext_bytes,
        cid=imported.record(),
    )
    write_manifest(manifest_path, manifest)
    return EncryptedDataset(ciphertext, manifest_path, key_file, manifest)


def ciphertext_of(manifest_path: Path, manifest: DatasetManifest) -> Path:
    return manifest_path.parent / manifest.ciphertext


def push_dataset(
    manifest_path: str | Path,
    *,
    store: LocalStore | None = None,
    node: KuboClient | None = None,
    car: str | Path | None = None,
) -> DatasetManifest:
    """Put the ciphertext into the local store (default) or an IPFS node; the CID must equal
    the one computed at encryption (same profile), else nothing is recorded. The location is
    added to the manifest, except for a sealed result (its manifest is a run output)."""
    where = Path(manifest_path)
    manifest = read_manifest(where)
    if not manifest.cid:
        raise UsageError(f"{where}: the manifest has no CID (field 'cid')")
    profile = get_profile(str(manifest.cid["profile"]))
    ciphertext = ciphertext_of(where, manifest)
    if node is not None:
        result = node.add(ciphertext, profile)
        location: dict[str, Any] = {"kind": "ipfs", "node": node.url}
    else:
        target = store if store is not None else LocalStore(where.parent / ".pox" / "store")
        result = target.add_file(ciphertext, profile)
        location = {"kind": "local-store", "path": str(target.root)}
        if car is not None:
            target.export_car(result.cid, car)
            location["car"] = str(car)
    if str(result.cid) != manifest.cid["cid"]:
        raise PoxError(
            f"{ciphertext}: pushed as {result.cid}, but the manifest says {manifest.cid['cid']}",
            hint="the ciphertext changed since `pox dataset encrypt`",
        )
    if manifest.recipient is not None:
        # a sealed result's manifest is a run output, recorded in the job's statement: leave it
        return replace(manifest, locations=[*manifest.locations, location])
    manifest.locations = [loc for loc in manifest.locations if loc != location] + [location]
    write_manifest(where, manifest)
    return manifest


def _manifest_with(where: Path, update: Callable[[DatasetManifest], None]) -> DatasetManifest:
    manifest = read_manifest(where)
    update(manifest)
    write_manifest(where, manifest)
    return manifest
