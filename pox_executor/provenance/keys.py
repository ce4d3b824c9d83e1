"""Ed25519 signing and public keys for every signature PoX makes (RFC 8032).

This module owns key handling only: generating and loading raw Ed25519 keys, signing bytes,
verifying signatures and naming public keys. The key id (`sha256:<hex>` of the raw public key)
is what DSSE envelopes carry in `signatures[].keyid`. Signed-note key ids live in `checkpoint`.
Keys never leave this module as anything but raw bytes; no PEM, no other algorithms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from pox_executor.errors import VerificationError

KEY_SIZE_BYTES = 32
SIGNATURE_SIZE_BYTES = 64


@dataclass(frozen=True)
class PublicKey:
    """A raw 32-byte Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes):
            raise VerificationError(
                f"Ed25519 public key: expected bytes, got {type(self.raw).__name__}"
            )
        if len(self.raw) != KEY_SIZE_BYTES:
            raise VerificationError(
                f"Ed25519 public key: expected {KEY_SIZE_BYTES} raw bytes, got {len(self.raw)}"
            )

    @cached_property
    def _key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def hex(self) -> str:
        return self.raw.hex()

    @property
    def keyid(self) -> str:
        """`sha256:` + hex SHA-256 of the raw key: the DSSE `keyid` of this key."""
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        try:
            raw = bytes.fromhex(text)
        except (TypeError, ValueError):
            raise VerificationError(
                f"Ed25519 public key: expected {2 * KEY_SIZE_BYTES} hex digits, got {text!r}"
            ) from None
        return cls(raw)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise VerificationError unless `signature` is this key's Ed25519 signature of `data`."""
        if len(signature) != SIGNATURE_SIZE_BYTES:
            raise VerificationError(
                f"Ed25519 signature by {self.keyid}: expected {SIGNATURE_SIZE_BYTES} bytes, "
                f"got {len(signature)}"
            )
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            raise VerificationError(
                f"Ed25519 signature by {self.keyid} does not verify over the signed data"
            ) from None

    def __repr__(self) -> str:
        return f"PublicKey({self.hex()})"


class SigningKey:
    """An Ed25519 private key. Its repr never shows the secret."""

    __slots__ = ("_private", "public_key")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = PublicKey(
            private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        """Load the 32-byte RFC 8032 private key seed."""
        if not isinstance(raw, bytes):
            raise VerificationError(
                f"Ed25519 private key: expected bytes, got {type(raw).__name__}"
            )
        if len(raw) != KEY_SIZE_BYTES:
            raise VerificationError(
                f"Ed25519 private key: expected {KEY_SIZE_BYTES} raw bytes, got {len(raw)}"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32-byte private key seed, for storing the key where the caller decides."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()})"
