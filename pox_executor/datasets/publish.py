"""Publishing a run's sealed results: at the end of a run, every output that is a result sealed
for a beneficiary (`pox dataset seal`, a manifest beside it) goes to the run's content store:
the local store `.pox/store` of the working directory by default, an IPFS node with
`--pox-ipfs URL`. Its CID is the one the job's statement already records; a node that builds
another is an error. The manifests, run outputs, are left as the job wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pox_executor.datasets.manifest import manifest_path_for, read_manifest
from pox_executor.datasets.owner import push_dataset
from pox_executor.errors import PoxError
from pox_executor.storage.kubo import KuboClient
from pox_executor.storage.localstore import LocalStore


def sealed_results(workdir: Path, names: Iterable[str]) -> list[Path]:
    """The manifests of the outputs in `names` that are sealed results."""
    found = []
    for name in sorted(set(names)):
        path = Path(name) if Path(name).is_absolute() else workdir / name
        manifest_path = manifest_path_for(path)
        if not manifest_path.is_file():
            continue
        try:
            manifest = read_manifest(manifest_path)
        except PoxError:
            continue
        if manifest.recipient is not None and manifest.ciphertext == path.name:
            found.append(manifest_path)
    return found


def publish_sealed_results(
    workdir: Path, names: Iterable[str], *, ipfs_url: str | None = None
) -> list[tuple[Path, str]]:
    """Push each sealed result among `names`; returns (manifest, CID) pairs."""
    node = KuboClient(ipfs_url) if ipfs_url else None
    store = None if node else LocalStore(workdir / ".pox" / "store")
    published = []
    for manifest_path in sealed_results(workdir, names):
        manifest = push_dataset(manifest_path, store=store, node=node)
        assert manifest.cid is not None
        published.append((manifest_path, str(manifest.cid["cid"])))
    return published
