"""Flattened JWE (RFC 7516 section 7.2.2) as the KBS protocol uses it for resource responses.

This module owns both directions: the broker encrypts a resource to the TEE public key the guest
bound into its evidence, the guest decrypts with the private key that never left the TEE. Content
encryption is A256GCM; key management is ECDH-ES+A256KW (P-256, P-384, P-521; Concat KDF per RFC
7518 section 4.6 with empty PartyU/PartyV; the ephemeral key `epk` in the PROTECTED header, as
Trustee sends it) or RSA-OAEP-256. The additional authenticated data is the ASCII of the
base64url protected header. It also owns the TEE key pair and its JWK form (`tee-pubkey`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from pox_executor.errors import PoxError

ECDH_ES_A256KW = "ECDH-ES+A256KW"
RSA_OAEP_256 = "RSA-OAEP-256"
A256GCM = "A256GCM"
KEY_ALGORITHMS = (ECDH_ES_A256KW, RSA_OAEP_256)

_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}
_MIN_RSA_BITS = 2048


class JweError(PoxError):
    """A JWE or JWK is malformed, uses an unsupported algorithm, or does not decrypt."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise JweError(f"{where}: expected a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JweError(f"{where}: not base64url ({exc})") from exc


# --- TEE key pair -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TeeKeyPair:
    """The ephemeral key pair a guest makes inside its TEE; only `public_jwk` leaves it."""

    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    public_jwk: dict[str, str]


def generate_tee_key(
    algorithm: Literal["ECDH-ES+A256KW", "RSA-OAEP-256"] = "ECDH-ES+A256KW",
) -> TeeKeyPair:
    """A fresh TEE key: EC P-256 for ECDH-ES+A256KW, RSA-3072 for RSA-OAEP-256."""
    if algorithm == ECDH_ES_A256KW:
        ec_key = ec.generate_private_key(ec.SECP256R1())
        return TeeKeyPair(ec_key, _ec_jwk(ec_key.public_key(), "P-256", 32, alg=ECDH_ES_A256KW))
    if algorithm == RSA_OAEP_256:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        numbers = rsa_key.public_key().public_numbers()
        jwk = {
            "kty": "RSA",
            "alg": RSA_OAEP_256,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
        return TeeKeyPair(rsa_key, jwk)
    raise JweError(f"unsupported TEE key algorithm {algorithm!r}; expected one of {KEY_ALGORITHMS}")


def _ec_jwk(
    public: ec.EllipticCurvePublicKey, crv: str, size: int, *, alg: str | None
) -> dict[str, str]:
    numbers = public.public_numbers()
    jwk = {
        "kty": "EC",
        "crv": crv,
        "x": b64url(numbers.x.to_bytes(size, "big")),
        "y": b64url(numbers.y.to_bytes(size, "big")),
    }
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def public_key_from_jwk(jwk: Any) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key of a `tee-pubkey` JWK; JweError says which member is wrong."""
    if not isinstance(jwk, Mapping):
        raise JweError("tee-pubkey: expected a JSON Web Key object")
    kty = jwk.get("kty")
    if kty == "EC":
        crv = jwk.get("crv")
        if crv not in _CURVES:
            raise JweError(f"tee-pubkey.crv: expected one of {', '.join(_CURVES)}, got {crv!r}")
        curve, size = _CURVES[str(crv)]
        x = b64url_decode(jwk.get("x"), "tee-pubkey.x")
        y = b64url_decode(jwk.get("y"), "tee-pubkey.y")
        if len(x) != size or len(y) != size:
            raise JweError(f"tee-pubkey: {crv} coordinates must be {size} bytes each")
        try:
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
            ).public_key()
        except ValueError as exc:
            raise JweError(f"tee-pubkey: not a point on {crv} ({exc})") from exc
    if kty == "RSA":
        alg = jwk.get("alg", RSA_OAEP_256)
        if alg != RSA_OAEP_256:
            raise JweError(
                f"tee-pubkey.alg: RSA keys must use {RSA_OAEP_256} (RSA1_5 is deprecated), "
                f"got {alg!r}"
            )
        n = int.from_bytes(b64url_decode(jwk.get("n"), "tee-pubkey.n"), "big")
        e = int.from_bytes(b64url_decode(jwk.get("e"), "tee-pubkey.e"), "big")
        if n.bit_length() < _MIN_RSA_BITS:
            raise JweError(f"tee-pubkey: RSA modulus must have at least {_MIN_RSA_BITS} bits")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise JweError(f"tee-pubkey: not an RSA public key ({exc})") from exc
    raise JweError(f"tee-pubkey.kty: expected 'EC' or 'RSA', got {kty!r}")


# --- encryption (broker side) -----------------------------------------------------------------


def concat_kdf(shared_secret: bytes, algorithm: str, key_bytes: int) -> bytes:
    """RFC 7518 section 4.6.2 Concat KDF with SHA-256 and empty PartyUInfo/PartyVInfo."""
    alg = algorithm.encode("ascii")
    other = (
        len(alg).to_bytes(4, "big")
        + alg
        + (0).to_bytes(4, "big")
        + (0).to_bytes(4, "big")
        + (key_bytes * 8).to_bytes(4, "big")
    )
    output = b""
    counter = 1
    while len(output) < key_bytes:
        output += hashlib.sha256(counter.to_bytes(4, "big") + shared_secret + other).digest()
        counter += 1
    return output[:key_bytes]


def encrypt(plaintext: bytes, tee_pubkey: Any) -> dict[str, str]:
    """A flattened JWE of `plaintext` to the TEE public key `tee_pubkey` (a JWK)."""
    public = public_key_from_jwk(tee_pubkey)
    cek = AESGCM.generate_key(bit_length=256)
    header: dict[str, Any] = {"enc": A256GCM}
    if isinstance(public, ec.EllipticCurvePublicKey):
        crv = str(tee_pubkey["crv"])
        curve, size = _CURVES[crv]
        ephemeral = ec.generate_private_key(curve())
        shared = ephemeral.exchange(ec.ECDH(), public)
        wrapping_key = concat_kdf(shared, ECDH_ES_A256KW, 32)
        encrypted_key = aes_key_wrap(wrapping_key, cek)
        header["alg"] = ECDH_ES_A256KW
        header["epk"] = _ec_jwk(ephemeral.public_key(), crv, size, alg=None)
    else:
        encrypted_key = public.encrypt(
            cek,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        header["alg"] = RSA_OAEP_256
    protected = b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return {
        "protected": protected,
        "encrypted_key": b64url(encrypted_key),
        "iv": b64url(iv),
        "ciphertext": b64url(sealed[:-16]),
        "tag": b64url(sealed[-16:]),
    }


# --- decryption (guest side) ------------------------------------------------------------------


def decrypt(jwe: Any, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """The plaintext of a flattened JWE addressed to `private_key`; JweError when it is not."""
    if not isinstance(jwe, Mapping):
        raise JweError("JWE: expected a flattened JSON serialization object")
    protected_text = jwe.get("protected")
    try:
        header = json.loads(b64url_decode(protected_text, "JWE protected"))
    except ValueError as exc:
        raise JweError(f"JWE protected header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise JweError("JWE protected header: expected an object")
    if header.get("enc") != A256GCM:
        raise JweError(f"JWE enc: expected {A256GCM}, got {header.get('enc')!r}")
    alg = header.get("alg")
    encrypted_key = b64url_decode(jwe.get("encrypted_key"), "JWE encrypted_key")
    try:
        if alg == ECDH_ES_A256KW:
            if not isinstance(private_key, ec.EllipticCurvePrivateKey):
                raise JweError(f"JWE alg {alg} needs an EC TEE key")
            epk = public_key_from_jwk(header.get("epk"))
            if not isinstance(epk, ec.EllipticCurvePublicKey) or epk.curve.name != (
                private_key.curve.name
            ):
                raise JweError("JWE epk: not a key on the TEE key's curve")
            shared = private_key.exchange(ec.ECDH(), epk)
            cek = aes_key_unwrap(concat_kdf(shared, ECDH_ES_A256KW, 32), encrypted_key)
        elif alg == RSA_OAEP_256:
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise JweError(f"JWE alg {alg} needs an RSA TEE key")
            cek = private_key.decrypt(
                encrypted_key,
                padding.OAEP(
                    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
                ),
            )
        else:
            raise JweError(f"JWE alg: expected one of {', '.join(KEY_ALGORITHMS)}, got {alg!r}")
    except (InvalidUnwrap, ValueError) as exc:
        raise JweError(f"JWE: the content key does not unwrap with this TEE key ({exc})") from exc
    if len(cek) != 32:
        raise JweError("JWE: content key is not 256 bits")
    aad = str(protected_text).encode("ascii")
    if jwe.get("aad"):
        aad += b"." + str(jwe["aad"]).encode("ascii")
    iv = b64url_decode(jwe.get("iv"), "JWE iv")
    ciphertext = b64url_decode(jwe.get("ciphertext"), "JWE ciphertext")
    tag = b64url_decode(jwe.get("tag"), "JWE tag")
    try:
        return AESGCM(cek).decrypt(iv, ciphertext + tag, aad)
    except (InvalidTag, ValueError) as exc:
        raise JweError("JWE: ciphertext does not authenticate (tampered or wrong key)") from exc
