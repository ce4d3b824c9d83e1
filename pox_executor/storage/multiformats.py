"""Multiformats used by IPFS: unsigned varints, base58btc and base32 multibase, multihash
sha2-256, and CIDs (v0 and v1) with their binary and string forms.

Implements the multiformats specs (unsigned-varint, multibase, multihash, CID) for the codecs
PoX uses: `dag-pb` (0x70), `raw` (0x55), `sha2-256` (0x12).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from pox_executor.errors import PoxError

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
_CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw"}
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: index for index, char in enumerate(_BASE58_ALPHABET)}


class CidError(PoxError):
    """A string or byte sequence is not a CID PoX can read."""


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as multiformats' unsigned-varint (and protobuf) use."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read one unsigned varint at `offset`; returns (value, offset after it)."""
    value = 0
    shift = 0
    while True:
        if offset >= len(data):
            raise CidError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise CidError("varint longer than 9 bytes")


def base58btc_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rest = divmod(number, 58)
        chars.append(_BASE58_ALPHABET[rest])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(chars))


def base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _BASE58_INDEX:
            raise CidError(f"{char!r} is not a base58btc character")
        number = number * 58 + _BASE58_INDEX[char]
    leading_ones = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_ones + body


def base32_encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase `b`)."""
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def base32_decode(text: str) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded)
    except ValueError as exc:
        raise CidError(f"not base32: {exc}") from None


@dataclass(frozen=True)
class Cid:
    """A CID: version, content codec, and sha2-256 digest (the only hash PoX produces)."""

    version: int
    codec: int
    digest: bytes

    @property
    def multihash(self) -> bytes:
        return bytes([SHA2_256, len(self.digest)]) + self.digest

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES.get(self.codec, hex(self.codec))

    def to_bytes(self) -> bytes:
        """Binary CID: the bare multihash for v0, version+codec+multihash for v1."""
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return base58btc_encode(self.multihash)
        return "b" + base32_encode(self.to_bytes())

    def to_v1(self) -> Cid:
        return Cid(1, self.codec, self.digest)


def cid_for_block(block: bytes, *, version: int, codec: int) -> Cid:
    """The CID of one block: sha2-256 of its bytes under `codec`; CIDv0 is dag-pb only."""
    if version == 0 and codec != DAG_PB:
        raise ValueError("CIDv0 exists for dag-pb blocks only")
    return Cid(version, codec, hashlib.sha256(block).digest())


def cid_from_bytes(data: bytes) -> Cid:
    """Parse a binary CID (v0 multihash or v1)."""
    if len(data) == 34 and data[0] == SHA2_256 and data[1] == 32:
        return Cid(0, DAG_PB, bytes(data[2:]))
    version, offset = decode_varint(data)
    if version != 1:
        raise CidError(f"unsupported CID version {version}")
    codec, offset = decode_varint(data, offset)
    hash_code, offset = decode_varint(data, offset)
    length, offset = decode_varint(data, offset)
    if hash_code != SHA2_256 or length != 32 or len(data) - offset != 32:
        raise CidError("only sha2-256 CIDs are supported")
    return Cid(1, codec, bytes(data[offset:]))


def parse_cid(text: str) -> Cid:
    """Parse a CID string: `Qm...` (v0, base58btc) or `b...` (v1, base32)."""
    text = text.strip()
    if text.startswith("Qm") and len(text) == 46:
        return cid_from_bytes(base58btc_decode(text))
    if text.startswith("b") and len(text) > 8:
        return cid_from_bytes(base32_decode(text[1:]))
    if text.startswith("z") and len(text) > 8:  # CIDv1 in base58btc (js-ipfs prints these)
        return cid_from_bytes(base58btc_decode(text[1:]))
    raise CidError(
        f"{text!r} is not a CID PoX reads",
        hint="expected a CIDv0 (Qm...) or a CIDv1 in base32 (b...) or base58btc (z...)",
    )
