"""The broker's flattened JWE against an independent JOSE implementation (jwcrypto), both ways."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwe as jose_jwe
from jwcrypto import jwk as jose_jwk

from pox_executor.sms import jwe


def _private_jwk(key: jwe.TeeKeyPair) -> jose_jwk.JWK:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    pem = key.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return jose_jwk.JWK.from_pem(pem)


def _header(document: dict[str, str]) -> dict[str, Any]:
    text = document["protected"]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return header


@pytest.mark.parametrize("algorithm", ["ECDH-ES+A256KW", "RSA-OAEP-256"])
def test_independent_implementation_decrypts_what_the_broker_sends(algorithm: Any) -> None:
    key = jwe.generate_tee_key(algorithm)
    document = jwe.encrypt(b"dataset key 0123", key.public_jwk)
    header = _header(document)
    assert header["alg"] == algorithm and header["enc"] == "A256GCM"
    assert set(document) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    if algorithm == "ECDH-ES+A256KW":
        # the ephemeral key travels in the PROTECTED header, as Trustee sends it
        assert header["epk"]["kty"] == "EC" and header["epk"]["crv"] == "P-256"
    token = jose_jwe.JWE()
    token.deserialize(json.dumps(document), key=_private_jwk(key))
    assert token.payload == b"dataset key 0123"


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_guest_decrypts_what_an_independent_implementation_sends(curve: Any) -> None:
    private = ec.generate_private_key(curve)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = jose_jwk.JWK.from_pem(
        private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    token = jose_jwe.JWE(
        b"secret from jwcrypto",
        protected=json.dumps({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}),
    )
    token.add_recipient(public)
    # jwcrypto's compact form carries epk in the protected header; re-shape it as flattened JSON
    compact = token.serialize(compact=True).split(".")
    document = dict(
        zip(["protected", "encrypted_key", "iv", "ciphertext", "tag"], compact, strict=True)
    )
    assert jwe.decrypt(document, private) == b"secret from jwcrypto"


def test_rsa_from_independent_implementation() -> None:
    key = jwe.generate_tee_key("RSA-OAEP-256")
    public = jose_jwk.JWK(**key.public_jwk)
    token = jose_jwe.JWE(
        b"rsa secret", protected=json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM"})
    )
    token.add_recipient(public)
    document = json.loads(token.serialize())
    assert jwe.decrypt(document, key.private_key) == b"rsa secret"


def test_tampering_and_wrong_keys_are_refused() -> None:
    key = jwe.generate_tee_key()
    other = jwe.generate_tee_key()
    document = jwe.encrypt(b"value", key.public_jwk)
    with pytest.raises(jwe.JweError, match=r"unwrap|authenticate"):
        jwe.decrypt(document, other.private_key)
    flipped = dict(document)
    raw = bytearray(jwe.b64url_decode(document["ciphertext"], "c"))
    raw[0] ^= 1
    flipped["ciphertext"] = jwe.b64url(bytes(raw))
    with pytest.raises(jwe.JweError, match="authenticate"):
        jwe.decrypt(flipped, key.private_key)
    # the protected header is authenticated: swapping it breaks the tag
    header = _header(document)
    header["kid"] = "x"
    swapped = dict(document, protected=jwe.b64url(json.dumps(header).encode()))
    with pytest.raises(jwe.JweError):
        jwe.decrypt(swapped, key.private_key)


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({"kty": "oct"}, "kty"),
        ({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}, "crv"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "32 bytes"),
        ({"kty": "RSA", "alg": "RSA1_5", "n": "AQAB", "e": "AQAB"}, "deprecated"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "2048"),
        ("not a key", "JSON Web Key"),
    ],
)
def test_bad_tee_keys_are_named(jwk: Any, message: str) -> None:
    with pytest.raises(jwe.JweError, match=message):
        jwe.encrypt(b"x", jwk)


def test_point_not_on_curve_is_refused() -> None:
    key = jwe.generate_tee_key()
    bad = dict(key.public_jwk, y=key.public_jwk["x"])
    with pytest.raises(jwe.JweError, match="not a point"):
        jwe.encrypt(b"x", bad)
