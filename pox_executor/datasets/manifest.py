"""The dataset manifest: the JSON file that travels next to an encrypted dataset.

`<ciphertext>.json`, written by `pox dataset encrypt` and completed by `push`, `register` and
`grant`. It holds what anyone may know: the format, the ciphertext's checksum (`0x` + SHA-256,
iExec's dataset checksum) and size, its CID with the CID profile, where it was pushed, the
on-chain dataset address, and the broker resource that holds the key. Never the key, never a
digest of the plaintext (a low-entropy dataset would be guessable from it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.errors import UsageError
from pox_executor.primitives import write_atomically

MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".json"
_CHECKSUM = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass
class DatasetManifest:
    name: str
    format: str
    ciphertext: str  # file name, relative to the manifest's folder
    checksum: str
    size: int
    cid: dict[str, Any] | None = None  # {"cid", "profile", "size"}
    locations: list[dict[str, Any]] = field(default_factory=list)
    dataset: dict[str, Any] | None = None  # {"address", "registry", "chain_id", "owner", "tx"}
    grant: dict[str, Any] | None = None  # {"broker", "resource", "policy"}
    recipient: dict[str, Any] | None = None  # sealed results: {"alg", "spki_sha256", "wrapped_key"}
    version: int = MANIFEST_VERSION

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @property
    def address(self) -> str:
        if not self.dataset or "address" not in self.dataset:
            raise UsageError(
                f"dataset {self.name!r} is not registered yet",
                hint="run `pox dataset register MANIFEST` first",
            )
        return str(self.dataset["address"])

    @property
    def key_resource(self) -> str:
        """The broker resource holding the dataset key: `dataset/<address>/key`."""
        return f"dataset/{self.address}/key"


def manifest_path_for(ciphertext: Path) -> Path:
    return ciphertext.with_name(ciphertext.name + MANIFEST_SUFFIX)


def write_manifest(path: Path, manifest: DatasetManifest) -> None:
    write_atomically(path, (json.dumps(manifest.to_json(), indent=1) + "\n").encode())


def read_manifest(path: str | Path) -> DatasetManifest:
    where = Path(path)
    try:
        raw = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{where}: no dataset manifest",
            hint="`pox dataset encrypt FILE` writes FILE.pox-enc and FILE.pox-enc.json",
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{where}: not a readable JSON manifest ({exc})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a JSON object")
    if raw.get("version") != MANIFEST_VERSION:
        raise UsageError(f"{where}: field 'version': expected {MANIFEST_VERSION}")
    for key, kind in (("name", str), ("format", str), ("ciphertext", str), ("size", int)):
        if not isinstance(raw.get(key), kind):
            raise UsageError(f"{where}: field {key!r}: expected a {kind.__name__}")
    if not isinstance(raw.get("checksum"), str) or not _CHECKSUM.match(raw["checksum"]):
        raise UsageError(f"{where}: field 'checksum': expected 0x and 64 lower-case hex digits")
    known = {f for f in DatasetManifest.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r}")
    return DatasetManifest(**raw)
