"""The dag-pb codec and the UnixFS `Data` message: exactly the bytes Kubo (boxo) writes.

dag-pb (IPLD spec): `PBNode { Links (field 2, repeated PBLink) ; Data (field 1, bytes) }`, links
serialised before data; `PBLink { Hash (1, bytes CID) ; Name (2, string) ; Tsize (3, varint) }`.
UnixFS (UnixFS spec): `Data { Type (1, enum) ; Data (2, bytes) ; filesize (3) ; blocksizes (4,
repeated, not packed) }`. Kubo writes an empty `Name` on file links and omits absent `Data`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pox_executor.storage.multiformats import Cid, CidError, cid_from_bytes, decode_varint
from pox_executor.storage.multiformats import encode_varint as _varint

UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2


@dataclass(frozen=True)
class PBLink:
    cid: Cid
    tsize: int
    name: str = ""


@dataclass(frozen=True)
class UnixfsData:
    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class PBNode:
    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


def _bytes_field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def encode_unixfs(message: UnixfsData) -> bytes:
    out = bytearray(_varint_field(1, message.type))
    if message.data is not None:
        out += _bytes_field(2, message.data)
    if message.filesize is not None:
        out += _varint_field(3, message.filesize)
    for size in message.blocksizes:
        out += _varint_field(4, size)
    return bytes(out)


def encode_link(link: PBLink) -> bytes:
    body = (
        _bytes_field(1, link.cid.to_bytes())
        + _bytes_field(2, link.name.encode("utf-8"))
        + _varint_field(3, link.tsize)
    )
    return _bytes_field(2, body)


def encode_node(links: tuple[PBLink, ...] | list[PBLink], data: bytes | None) -> bytes:
    out = bytearray()
    for link in links:
        out += encode_link(link)
    if data is not None:
        out += _bytes_field(1, data)
    return bytes(out)


def _fields(buffer: bytes) -> list[tuple[int, int | bytes]]:
    """Split a protobuf message into (field number, varint or bytes) pairs."""
    out: list[tuple[int, int | bytes]] = []
    offset = 0
    while offset < len(buffer):
        key, offset = decode_varint(buffer, offset)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, offset = decode_varint(buffer, offset)
            out.append((number, value))
        elif wire == 2:
            length, offset = decode_varint(buffer, offset)
            if offset + length > len(buffer):
                raise CidError("truncated protobuf field")
            out.append((number, buffer[offset : offset + length]))
            offset += length
        else:
            raise CidError(f"unexpected protobuf wire type {wire}")
    return out


def decode_node(block: bytes) -> PBNode:
    links: list[PBLink] = []
    data: bytes | None = None
    for number, value in _fields(block):
        if number == 2 and isinstance(value, bytes):
            cid: Cid | None = None
            name = ""
            tsize = 0
            for link_number, link_value in _fields(value):
                if link_number == 1 and isinstance(link_value, bytes):
                    cid = cid_from_bytes(link_value)
                elif link_number == 2 and isinstance(link_value, bytes):
                    name = link_value.decode("utf-8")
                elif link_number == 3 and isinstance(link_value, int):
                    tsize = link_value
            if cid is None:
                raise CidError("dag-pb link without a hash")
            links.append(PBLink(cid, tsize, name))
        elif number == 1 and isinstance(value, bytes):
            data = value
    return PBNode(tuple(links), data)


def decode_unixfs(data: bytes) -> UnixfsData:
    kind = -1
    payload: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, value in _fields(data):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, bytes):
            payload = value
        elif number == 3 and isinstance(value, int):
            filesize = value
        elif number == 4 and isinstance(value, int):
            blocksizes.append(value)
    if kind < 0:
        raise CidError("UnixFS data without a type")
    return UnixfsData(kind, payload, filesize, tuple(blocksizes))
