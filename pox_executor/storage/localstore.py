"""The embedded content-addressed store: IPFS blocks as files, so no daemon is needed.

Layout: `<root>/blocks/<aa>/<sha256 hex>` holds one block (dag-pb or raw) named by its digest,
so a CIDv0 and a CIDv1 of the same dag-pb block share one file. Blocks are written atomically
and checked against their digest on every read. `add_file` imports a file with a CID profile,
`cat` streams a file back from its DAG, `export_car` writes a CARv1 any IPFS node imports
(`ipfs dag import`), `import_car` reads one back (blocks are verified before they are kept).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from pox_executor.errors import PoxError
from pox_executor.storage.car import read_car, write_car
from pox_executor.storage.dagpb import UNIXFS_FILE, UNIXFS_RAW, decode_node, decode_unixfs
from pox_executor.storage.multiformats import DAG_PB, RAW, Cid, CidError
from pox_executor.storage.unixfs import ImportResult, Profile, import_file


class StoreError(PoxError):
    """A block is missing from the store, or its bytes do not match its CID."""


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"

    def _path(self, cid: Cid) -> Path:
        name = cid.digest.hex()
        return self._blocks / name[:2] / name

    def has(self, cid: Cid) -> bool:
        return self._path(cid).is_file()

    def put_block(self, cid: Cid, data: bytes) -> None:
        if hashlib.sha256(data).digest() != cid.digest:
            raise StoreError(f"block does not match its CID {cid}")
        path = self._path(cid)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get_block(self, cid: Cid) -> bytes:
        path = self._path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"block {cid} is not in the store {self.root}",
                hint="push the file first (`pox dataset push`) or import its CAR",
            ) from None
        if hashlib.sha256(data).digest() != cid.digest:
            raise StoreError(f"block {cid} in {path} is corrupt (digest differs)")
        return data

    def add_file(self, path: str | os.PathLike[str], profile: Profile) -> ImportResult:
        """Import `path` under `profile`, keeping every block; returns the root CID."""
        return import_file(path, profile, sink=self.put_block)

    def cat(self, cid: Cid) -> Iterator[bytes]:
        """The file content under `cid`, streamed in DAG order (leaves left to right)."""
        stack = [cid]
        while stack:
            current = stack.pop()
            block = self.get_block(current)
            if current.codec == RAW:
                yield block
                continue
            if current.codec != DAG_PB:
                raise StoreError(f"{current} is neither raw nor dag-pb")
            try:
                node = decode_node(block)
                meta = decode_unixfs(node.data or b"")
            except CidError as exc:
                raise StoreError(f"block {current} is not a UnixFS node: {exc}") from None
            if meta.type not in (UNIXFS_FILE, UNIXFS_RAW):
                raise StoreError(f"{current} is not a UnixFS file (type {meta.type})")
            if meta.data:
                yield meta.data
            stack.extend(link.cid for link in reversed(node.links))

    def dag_blocks(self, cid: Cid) -> Iterator[tuple[Cid, bytes]]:
        """Every block of the DAG under `cid`, root first, depth first."""
        stack = [cid]
        while stack:
            current = stack.pop()
            block = self.get_block(current)
            yield current, block
            if current.codec == DAG_PB:
                stack.extend(link.cid for link in reversed(decode_node(block).links))

    def export_car(self, cid: Cid, out_path: str | os.PathLike[str]) -> int:
        """Write the DAG under `cid` as a CARv1 at `out_path`; returns its size in bytes."""
        out = Path(out_path)
        tmp = out.with_name(f".{out.name}.tmp")
        with open(tmp, "wb") as handle:
            size = write_car(handle, [cid], self.dag_blocks(cid))
        os.replace(tmp, out)
        return size

    def import_car(self, car_path: str | os.PathLike[str]) -> list[Cid]:
        """Keep every block of a CARv1 (each verified against its CID); returns its roots."""
        with open(car_path, "rb") as handle:
            roots, blocks = read_car(handle)
            for cid, data in blocks:
                self.put_block(cid, data)
        return roots
