"""CARv1 (IPLD Content Addressable aRchive, version 1): write and read.

A CARv1 is `varint(len(header)) header` then, per block, `varint(len(cid)+len(data)) cid data`.
The header is dag-cbor `{"roots": [CID], "version": 1}` (map keys in dag-cbor's length-first
order, CIDs as tag 42 over a 0x00-prefixed binary CID). `ipfs dag import` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from pox_executor.storage.multiformats import (
    Cid,
    CidError,
    cid_from_bytes,
    decode_varint,
    encode_varint,
)


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    if value < 0x100:
        return bytes([major << 5 | 24, value])
    if value < 0x10000:
        return bytes([major << 5 | 25]) + value.to_bytes(2, "big")
    return bytes([major << 5 | 26]) + value.to_bytes(4, "big")


def car_header(roots: list[Cid]) -> bytes:
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots"
    out += _cbor_head(4, len(roots))
    for root in roots:
        binary = b"\0" + root.to_bytes()
        out += b"\xd8\x2a" + _cbor_head(2, len(binary)) + binary
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return bytes(out)


def write_car(out: BinaryIO, roots: list[Cid], blocks: Iterable[tuple[Cid, bytes]]) -> int:
    """Write a CARv1 to `out`; returns the number of bytes written."""
    header = car_header(roots)
    written = out.write(encode_varint(len(header)) + header)
    for cid, data in blocks:
        binary = cid.to_bytes()
        written += out.write(encode_varint(len(binary) + len(data)) + binary)
        written += out.write(data)
    return written


def _read_exact(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise CidError("truncated CAR file")
    return data


def _read_varint(handle: BinaryIO) -> int | None:
    raw = bytearray()
    while True:
        byte = handle.read(1)
        if not byte:
            if raw:
                raise CidError("truncated varint in CAR file")
            return None
        raw += byte
        if byte[0] < 0x80:
            return decode_varint(bytes(raw))[0]


def read_car(handle: BinaryIO) -> tuple[list[Cid], Iterator[tuple[Cid, bytes]]]:
    """Read a CARv1 written by `write_car` (or an IPFS node): (roots, block iterator)."""
    length = _read_varint(handle)
    if length is None:
        raise CidError("empty CAR file")
    header = _read_exact(handle, length)
    roots = _parse_header_roots(header)

    def blocks() -> Iterator[tuple[Cid, bytes]]:
        while (section := _read_varint(handle)) is not None:
            body = _read_exact(handle, section)
            if body[:2] == b"\x12\x20":
                cid_length = 34
            else:
                _, offset = decode_varint(body)  # version
                _, offset = decode_varint(body, offset)  # codec
                _, offset = decode_varint(body, offset)  # hash code
                digest_length, offset = decode_varint(body, offset)
                cid_length = offset + digest_length
            yield cid_from_bytes(body[:cid_length]), body[cid_length:]

    return roots, blocks()


def _parse_header_roots(header: bytes) -> list[Cid]:
    # the header holds few CIDs: find each tag-42 byte string and parse it
    roots: list[Cid] = []
    offset = header.find(b"roots")
    if offset < 0 or b"version" not in header:
        raise CidError("CAR header without roots or version")
    while (offset := header.find(b"\xd8\x2a", offset)) >= 0:
        offset += 2
        head = header[offset]
        if head == 0x58:
            size, offset = header[offset + 1], offset + 2
        elif 0x40 <= head < 0x58:
            size, offset = head - 0x40, offset + 1
        else:
            raise CidError("CAR header root is not a byte string")
        roots.append(cid_from_bytes(header[offset + 1 : offset + size]))
        offset += size
    return roots
