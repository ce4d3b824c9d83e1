"""Ed25519 keys: RFC 8032 vectors, key ids, and every way a signature check must fail."""

from __future__ import annotations

import hashlib

import pytest

from pox_executor.errors import VerificationError
from pox_executor.provenance.keys import PublicKey, SigningKey

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector_signs_and_verifies() -> None:
    key = SigningKey.from_private_bytes(bytes.fromhex(RFC8032_SECRET))
    assert key.public_key.hex() == RFC8032_PUBLIC
    assert key.sign(b"").hex() == RFC8032_SIGNATURE
    PublicKey.from_hex(RFC8032_PUBLIC).verify(bytes.fromhex(RFC8032_SIGNATURE), b"")


def test_keyid_is_sha256_of_the_raw_public_key() -> None:
    public = PublicKey.from_hex(RFC8032_PUBLIC)
    assert public.keyid == "sha256:" + hashlib.sha256(bytes.fromhex(RFC8032_PUBLIC)).hexdigest()
    assert public.raw == bytes.fromhex(RFC8032_PUBLIC)


def test_generated_key_round_trips_through_private_bytes() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_private_bytes(key.private_bytes())
    assert again.public_key == key.public_key
    signature = key.sign(b"statement")
    again.public_key.verify(signature, b"statement")
    assert PublicKey.from_hex(key.public_key.hex()) == key.public_key


def test_two_generated_keys_differ() -> None:
    assert SigningKey.generate().public_key != SigningKey.generate().public_key


def test_repr_does_not_leak_the_private_key() -> None:
    key = SigningKey.generate()
    assert key.private_bytes().hex() not in repr(key)
    assert key.public_key.hex() in repr(key)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda sig, data: (bytes([sig[0] ^ 1]) + sig[1:], data), id="flipped-sig-bit"),
        pytest.param(lambda sig, data: (sig, data + b"!"), id="changed-data"),
        pytest.param(lambda sig, data: (sig[:-1], data), id="short-sig"),
        pytest.param(lambda sig, data: (b"", data), id="empty-sig"),
    ],
)
def test_tampered_signature_is_rejected(tamper: object) -> None:
    key = SigningKey.generate()
    sig, data = tamper(key.sign(b"data"), b"data")  # type: ignore[operator]
    with pytest.raises(VerificationError, match=key.public_key.keyid):
        key.public_key.verify(sig, data)


def test_signature_by_another_key_is_rejected() -> None:
    signature = SigningKey.generate().sign(b"data")
    with pytest.raises(VerificationError, match="does not verify"):
        SigningKey.generate().public_key.verify(signature, b"data")


@pytest.mark.parametrize("text", ["", "zz" * 32, "ab" * 31, "ab" * 33])
def test_malformed_hex_public_key_is_rejected(text: str) -> None:
    with pytest.raises(VerificationError, match="Ed25519 public key"):
        PublicKey.from_hex(text)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33])
def test_wrong_length_keys_are_rejected(raw: bytes) -> None:
    with pytest.raises(VerificationError, match="32 raw bytes"):
        PublicKey(raw)
    with pytest.raises(VerificationError, match="32 raw bytes"):
        SigningKey.from_private_bytes(raw)


def test_non_bytes_key_material_is_rejected_by_type() -> None:
    with pytest.raises(VerificationError, match="expected bytes, got bytearray"):
        PublicKey(bytearray(32))  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="expected bytes, got str"):
        SigningKey.from_private_bytes("00" * 32)  # type: ignore[arg-type]
