"""Images and source stores on IPFS: push them to a node, record their CIDs, fetch them back.

Pushing goes through the Kubo RPC client (`storage.kubo`), which checks that the node built the
CID computed offline. What was pushed is recorded in an *IPFS index*, a small JSON file an
auditor can follow from a measurement to a CID (default `<source store>/ipfs-index.json`):

    {"format": "pox-images-ipfs-index/1",
     "images": {<measurement>: {name, recipe_digest, cid, profile, size_bytes, sha256}},
     "stores": {<image>-<recipe digest>: {image, recipe_digest, measurement, profile,
                "manifest": {cid, sha256}, "blobs": {<sha256>: <cid>}}}}

An image goes up as its export file (`archived.export_image`), one CID per measurement. A source
store goes up per blob: each `.deb`, wheel and build tool is its own IPFS file, so the Debian
packages the images share, and the unchanged ones across re-locks, are stored once; the
manifest goes up too. Fetching checks everything twice: the bytes a node serves must give the
CID asked for (recomputed with the recorded profile), and then their own digest: an image's
root filesystem must be the measurement (`archived.import_image_file`), a store blob its SHA-256
name. A node or index that hands out other bytes is refused and nothing is imported or stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pox_executor.enclave.images.archived import export_image, import_image_file
from pox_executor.enclave.images.recipes import load_recipe, recipe_digest
from pox_executor.enclave.images.store import SourceStore, default_store, manifest_inputs
from pox_executor.errors import PoxError, UsageError, VerificationError
from pox_executor.storage.kubo import KuboClient
from pox_executor.storage.multiformats import parse_cid
from pox_executor.storage.unixfs import FileImporter, Profile, get_profile

INDEX_FORMAT = "pox-images-ipfs-index/1"
INDEX_FILE = "ipfs-index.json"


def default_index() -> Path:
    return default_store() / INDEX_FILE


def read_index(path: Path) -> dict[str, Any]:
    """The index at `path` (an empty one when the file does not exist)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"format": INDEX_FORMAT, "images": {}, "stores": {}}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable IPFS index ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise UsageError(f"{path}: not an IPFS index of pox images (format {INDEX_FORMAT})")
    data.setdefault("images", {})
    data.setdefault("stores", {})
    return data


@contextmanager
def _locked_index(path: Path) -> Iterator[dict[str, Any]]:
    """The index, read under an exclusive lock and written back atomically on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = read_index(path)
        yield index
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        tmp.rename(path)


def _download(node: KuboClient, cid: str, profile: Profile, target: Path) -> str:
    """Write the file under `cid` to `target`; its SHA-256. Bytes of another CID are refused."""
    try:
        wanted = str(parse_cid(cid))
    except PoxError as exc:  # a bad index entry or --cid
        raise UsageError(str(exc), hint="the CID of an image export or store file") from None
    importer = FileImporter(profile)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for chunk in node.cat(wanted):
            importer.write(chunk)
            digest.update(chunk)
            out.write(chunk)
    served = str(importer.finish().cid)
    if served != wanted:
        target.unlink(missing_ok=True)
        raise VerificationError(
            f"IPFS node at {node.url} served bytes whose CID is {served} (profile "
            f"{profile.name}), not the requested {wanted}: refused"
        )
    return digest.hexdigest()


# -- images ---------------------------------------------------------------------------------


def push_image(image: str, node: KuboClient, index: Path, profile: Profile) -> dict[str, Any]:
    """Export `image` and add the export file to `node`; its index entry (also recorded)."""
    node.version()  # an unreachable node fails here, before the export is written
    with tempfile.TemporaryDirectory(prefix="pox-push-") as tmp:
        exported = Path(tmp) / "pox-image.tar"
        meta = export_image(image, exported)
        sha256 = _sha256(exported)
        result = node.add(exported, profile)
    entry = {
        "name": meta["name"],
        "recipe_digest": meta["recipe_digest"],
        "cid": str(result.cid),
        "profile": profile.name,
        "size_bytes": result.size_bytes,
        "sha256": sha256,
    }
    with _locked_index(index) as document:
        document["images"][str(meta["measurement"])] = entry
    return {"measurement": meta["measurement"], **entry}


def fetch_image_ipfs(
    measurement: str,
    node: KuboClient,
    *,
    index: Path | None = None,
    cid: str | None = None,
    profile: Profile | None = None,
) -> str:
    """Fetch the export of `measurement` from `node` (by `cid`, or the index's) and import it.

    Refused, with nothing imported, when the node's bytes are not the CID or the root
    filesystem inside them is not `measurement`. Returns the CID fetched.
    """
    if len(measurement) != 64 or any(c not in "0123456789abcdef" for c in measurement):
        raise UsageError(f"{measurement!r} is not a measurement (64 lowercase hex digits)")
    if cid is None:
        where = index or default_index()
        entry = read_index(where)["images"].get(measurement)
        if not isinstance(entry, dict):
            raise UsageError(
                f"the IPFS index {where} records no image with measurement {measurement}",
                hint="give its CID with --cid, or the index it was pushed with (--index)",
            )
        cid = str(entry["cid"])
        profile = get_profile(str(entry["profile"]))
    chosen = profile or get_profile("kubo-cidv1")
    with tempfile.TemporaryDirectory(prefix="pox-fetch-") as tmp:
        exported = Path(tmp) / "pox-image.tar"
        _download(node, cid, chosen, exported)
        try:
            import_image_file(exported, expect=measurement)
        except VerificationError as exc:
            reason = str(exc).removeprefix(f"{exported}: ")
            raise VerificationError(f"IPFS {cid} from {node.url}: {reason}") from None
        except UsageError as exc:
            reason = str(exc).removeprefix(f"{exported}: ")
            raise VerificationError(
                f"IPFS {cid} from {node.url} is not an image export of {measurement} "
                f"({reason}): refused"
            ) from None
    return cid


# -- source stores --------------------------------------------------------------------------


def push_store(
    store: SourceStore,
    node: KuboClient,
    index: Path,
    profile: Profile,
    names: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Add each blob and manifest of the store's builds (of `names`) to `node`; the entries."""
    node.version()
    manifests = [p for p in store.manifests() if names is None or p.stem.rsplit("-", 1)[0] in names]
    if not manifests:
        which = f" of {', '.join(names)}" if names else ""
        raise UsageError(f"source store {store.root} holds no build manifest{which} to push")
    entries: list[dict[str, Any]] = []
    for path in manifests:
        manifest = json.loads(path.read_text())
        blobs: dict[str, str] = {}
        for item in manifest_inputs(manifest):
            blob = store.verified_blob(item.sha256)
            if blob is None:
                raise UsageError(
                    f"source store {store.root} lacks {item.filename} (sha256 {item.sha256}) "
                    f"that {path.name} references"
                )
            if item.sha256 not in blobs:
                blobs[item.sha256] = str(node.add(blob, profile).cid)
        added = node.add(path, profile)
        entry = {
            "image": str(manifest["image"]),
            "recipe_digest": str(manifest["recipe_digest"]),
            "measurement": str(manifest.get("measurement", "")),
            "profile": profile.name,
            "manifest": {"cid": str(added.cid), "sha256": _sha256(path)},
            "blobs": blobs,
        }
        with _locked_index(index) as document:
            document["stores"][path.stem] = entry
        if log is not None:
            log(f"pushed {path.stem}: {len(blobs)} files, manifest {added.cid}")
        entries.append(entry)
    return entries


def fetch_store(
    name: str,
    node: KuboClient,
    target: Path,
    *,
    index: Path | None = None,
    digest: str | None = None,
) -> Path:
    """Fetch the inputs of `pox/<name>` at `digest` (default: this checkout's) into the store
    folder `target`; the manifest written. Every file is checked by CID and by SHA-256."""
    where = index or default_index()
    digest = digest or recipe_digest(load_recipe(name))
    stores = read_index(where)["stores"]
    entry = stores.get(f"{name}-{digest}")
    if not isinstance(entry, dict):
        held = ", ".join(sorted(stores)) or "nothing"
        raise UsageError(
            f"the IPFS index {where} records no source store of pox/{name} at recipe digest "
            f"{digest[:16]}...",
            hint=f"it records: {held}; check out the commit the store was pushed from",
        )
    profile = get_profile(str(entry["profile"]))
    store = SourceStore(target)
    with tempfile.TemporaryDirectory(prefix="pox-store-fetch-") as tmp:
        scratch = Path(tmp) / "file"
        manifest_sha = _download(node, str(entry["manifest"]["cid"]), profile, scratch)
        if manifest_sha != entry["manifest"]["sha256"]:
            raise VerificationError(
                f"IPFS index {where}: the manifest of {name}-{digest[:16]} has sha256 "
                f"{manifest_sha}, not the recorded {entry['manifest']['sha256']}: refused"
            )
        manifest = json.loads(scratch.read_text())
        if manifest.get("image") != name or manifest.get("recipe_digest") != digest:
            raise VerificationError(
                f"IPFS manifest {entry['manifest']['cid']} is of {manifest.get('image')}-"
                f"{manifest.get('recipe_digest')}, not {name}-{digest}: refused"
            )
        blobs = dict(entry["blobs"])
        for item in manifest_inputs(manifest):
            if store.has(item.sha256):
                continue
            if item.sha256 not in blobs:
                raise UsageError(
                    f"the IPFS index {where} has no CID for {item.filename} (sha256 "
                    f"{item.sha256}) of {name}"
                )
            _download(node, blobs[item.sha256], profile, scratch)
            try:
                store.put_file(scratch, expected_sha256=item.sha256)
            except VerificationError:
                raise VerificationError(
                    f"IPFS {blobs[item.sha256]} from {node.url} is not {item.filename}: its "
                    f"sha256 is {_sha256(scratch)}, the manifest names {item.sha256}; refused"
                ) from None
        return store.write_manifest(name, digest, manifest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def node_for(url: str) -> KuboClient:
    """The Kubo RPC client of `--ipfs URL`, with a long timeout for big files."""
    return KuboClient(url, timeout_s=600.0)
