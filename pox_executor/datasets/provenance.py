"""What a job statement says about a confidential dataset or a sealed result it touched.

`dataset_annotations(workdir, path, sha256)`: when the file at `path` has a dataset manifest
beside it (`<path>.json`) whose checksum is this very file's SHA-256, the statement entry of that
file gets `pox.dataset`: the dataset's on-chain address and registry, its checksum and its CID
with the CID profile (and, for a sealed result, the beneficiary key's fingerprint). Only public
facts: the ciphertext's digest is the entry's own; no plaintext digest is ever recorded.
Any other `.json` beside a file is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pox_executor.datasets.manifest import manifest_path_for, read_manifest
from pox_executor.errors import PoxError

DATASET_ANNOTATION = "pox.dataset"


def dataset_annotations(workdir: Path, path: str, sha256: str | None) -> dict[str, Any]:
    if not sha256:
        return {}
    file_path = Path(path) if Path(path).is_absolute() else workdir / path
    manifest_path = manifest_path_for(file_path)
    if not manifest_path.is_file():
        return {}
    try:
        manifest = read_manifest(manifest_path)
    except PoxError:
        return {}
    if manifest.checksum != "0x" + sha256 or manifest.ciphertext != file_path.name:
        return {}
    facts: dict[str, Any] = {
        "name": manifest.name,
        "format": manifest.format,
        "checksum": manifest.checksum,
    }
    if manifest.cid:
        facts["cid"] = manifest.cid.get("cid")
        facts["cid_profile"] = manifest.cid.get("profile")
    if manifest.dataset:
        for key in ("address", "registry", "chain_id"):
            if key in manifest.dataset:
                facts[key] = manifest.dataset[key]
    if manifest.recipient:
        facts["sealed_for"] = {
            "alg": manifest.recipient.get("alg"),
            "spki_sha256": manifest.recipient.get("spki_sha256"),
        }
    return {DATASET_ANNOTATION: facts}
