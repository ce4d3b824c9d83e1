"""The UnixFS file importer: the DAG and root CID that `ipfs add` builds, computed offline.

A `Profile` names every parameter that changes a file's CID (CID version, raw or dag-pb leaves,
chunk size, links per node); PoX records the profile's name with each CID it reports. Profiles:

- `unixfs-v0-2015`: Kubo's default `ipfs add` (CIDv0, dag-pb leaves, 256 KiB chunks, 174 links);
  IPIP-499's legacy profile.
- `kubo-cidv1`: `ipfs add --cid-version=1` with Kubo's default import settings (CIDv1, raw
  leaves, 256 KiB chunks, 174 links).
- `unixfs-v1-2025`: IPIP-499's recommended profile (CIDv1, raw leaves, 1 MiB, 1024 links).

The layout is Kubo's `balanced` builder: all leaves at the same depth, each internal node full
before the next starts. The importer streams: it holds one chunk and, per tree level, at most
`max_links` links, so memory stays bounded whatever the file size. Blocks are handed to an
optional `sink` (a store) as they are made.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pox_executor.errors import UsageError
from pox_executor.storage.dagpb import UNIXFS_FILE, PBLink, UnixfsData, encode_node, encode_unixfs
from pox_executor.storage.multiformats import DAG_PB, RAW, Cid, cid_for_block, encode_varint

BlockSink = Callable[[Cid, bytes], None]


@dataclass(frozen=True)
class Profile:
    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "cid-version": self.cid_version,
            "raw-leaves": self.raw_leaves,
            "chunker": f"size-{self.chunk_size}",
            "layout": "balanced",
            "max-links": self.max_links,
            "hash": "sha2-256",
        }


PROFILES = {
    profile.name: profile
    for profile in (
        Profile("unixfs-v0-2015", 0, False, 262144, 174),
        Profile("kubo-cidv1", 1, True, 262144, 174),
        Profile("unixfs-v1-2025", 1, True, 1048576, 1024),
    )
}
DEFAULT_PROFILE = "kubo-cidv1"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(
            f"unknown CID profile {name!r}", hint=f"choose one of {', '.join(sorted(PROFILES))}"
        ) from None


@dataclass(frozen=True)
class _Link:
    cid: Cid
    tsize: int  # bytes of the whole sub-DAG (blocks), what PBLink.Tsize carries
    filesize: int  # bytes of file content below it, what UnixFS blocksizes carries


@dataclass(frozen=True)
class ImportResult:
    cid: Cid
    profile: Profile
    size_bytes: int  # file content length
    dag_size_bytes: int  # sum of all block sizes (the root's cumulative size)

    def record(self) -> dict[str, object]:
        """What PoX writes next to a CID: the CID, and the profile that reproduces it."""
        return {"cid": str(self.cid), "profile": self.profile.name, "size": self.size_bytes}


class FileImporter:
    """Feed bytes with `write`, then `finish()` for the root; same result as `ipfs add`."""

    def __init__(self, profile: Profile, sink: BlockSink | None = None) -> None:
        self.profile = profile
        self._sink = sink
        self._pending = bytearray()
        self._levels: list[list[_Link]] = [[]]
        self._size = 0
        self._finished = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk_size = self.profile.chunk_size
        view = memoryview(data)
        self._size += len(view)
        if self._pending:
            take = min(len(view), chunk_size - len(self._pending))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < chunk_size:
                return
            # a full pending chunk becomes a leaf only once more data shows it is not the last
            if not view:
                return
            self._add_leaf(bytes(self._pending))
            self._pending.clear()
        while len(view) > chunk_size:
            self._add_leaf(view[:chunk_size])
            view = view[chunk_size:]
        self._pending += view

    def finish(self) -> ImportResult:
        if self._finished:
            raise RuntimeError("FileImporter.finish called twice")
        self._finished = True
        if self._pending or self._size == 0:
            self._add_leaf(bytes(self._pending))
            self._pending.clear()
        level = 0
        while True:
            links = self._levels[level]
            is_top = level == len(self._levels) - 1
            if is_top and len(links) == 1:
                root = links[0]
                return ImportResult(root.cid, self.profile, self._size, root.tsize)
            if links:
                self._push(level + 1, self._make_parent(links))
                self._levels[level] = []
            level += 1

    def _emit(self, cid: Cid, block: bytes) -> None:
        if self._sink is not None:
            self._sink(cid, block)

    def _add_leaf(self, chunk: bytes | memoryview) -> None:
        # Without a sink no block is built: the digest is taken over the parts, so the chunk's
        # bytes are hashed where they lie (no copy into a protobuf buffer).
        size = len(chunk)
        if self.profile.raw_leaves:
            prefix = suffix = b""
            version, codec = 1, RAW
        else:
            prefix, suffix = _leaf_framing(size)
            version, codec = self.profile.cid_version, DAG_PB
        digest = hashlib.sha256(prefix)
        digest.update(chunk)
        digest.update(suffix)
        cid = Cid(version, codec, digest.digest())
        if self._sink is not None:
            self._sink(cid, prefix + bytes(chunk) + suffix)
        self._push(0, _Link(cid, len(prefix) + size + len(suffix), size))

    def _push(self, level: int, link: _Link) -> None:
        while len(self._levels) <= level:
            self._levels.append([])
        links = self._levels[level]
        if len(links) == self.profile.max_links:
            self._push(level + 1, self._make_parent(links))
            self._levels[level] = links = []
        links.append(link)

    def _make_parent(self, children: list[_Link]) -> _Link:
        filesize = sum(child.filesize for child in children)
        data = encode_unixfs(
            UnixfsData(UNIXFS_FILE, None, filesize, tuple(child.filesize for child in children))
        )
        block = encode_node([PBLink(child.cid, child.tsize) for child in children], data)
        cid = cid_for_block(block, version=self.profile.cid_version, codec=DAG_PB)
        self._emit(cid, block)
        return _Link(cid, len(block) + sum(child.tsize for child in children), filesize)


_READ_BYTES = 1 << 20


def _leaf_framing(size: int) -> tuple[bytes, bytes]:
    """The bytes before and after a chunk in its dag-pb leaf (`PBNode{Data: UnixFS{File, data,
    filesize}}`): the same bytes as `encode_node((), encode_unixfs(...))` around the chunk."""
    if size == 0:
        return encode_node((), encode_unixfs(UnixfsData(UNIXFS_FILE, None, 0))), b""
    head = encode_unixfs(UnixfsData(UNIXFS_FILE, None, None))  # type only
    data_key = b"\x12" + encode_varint(size)
    tail = b"\x18" + encode_varint(size)
    unixfs_size = len(head) + len(data_key) + size + len(tail)
    return b"\x0a" + encode_varint(unixfs_size) + head + data_key, tail


def import_chunks(
    chunks: Iterable[bytes], profile: Profile, sink: BlockSink | None = None
) -> ImportResult:
    importer = FileImporter(profile, sink)
    for chunk in chunks:
        importer.write(chunk)
    return importer.finish()


def import_file(
    path: str | os.PathLike[str], profile: Profile, sink: BlockSink | None = None
) -> ImportResult:
    """The CID `ipfs add` gives the file at `path` under `profile` (streamed, bounded memory)."""
    importer = FileImporter(profile, sink)
    buffer = bytearray(max(_READ_BYTES, profile.chunk_size))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            importer.write(view[:count])
    return importer.finish()


def import_bytes(data: bytes, profile: Profile, sink: BlockSink | None = None) -> ImportResult:
    importer = FileImporter(profile, sink)
    importer.write(data)
    return importer.finish()
