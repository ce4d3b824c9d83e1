"""DSSE v1: the PAE vector, canonical serialization, and strict envelope verification."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from pox_executor.errors import VerificationError
from pox_executor.provenance.dsse import (
    PAYLOAD_TYPE_INTOTO,
    envelope_digest,
    pae,
    serialize_envelope,
    sign_envelope,
    verify_envelope,
)
from pox_executor.provenance.keys import PublicKey, SigningKey

STATEMENT = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}).encode()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def trusted(key: SigningKey) -> dict[str, PublicKey]:
    return {key.public_key.keyid: key.public_key}


def test_pae_matches_the_spec_vector() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t\u00e9", b"\x00\xff") == b"DSSEv1 3 t\xc3\xa9 2 \x00\xff"
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_sign_envelope_shape(key: SigningKey) -> None:
    envelope = sign_envelope(STATEMENT, key)
    assert envelope["payloadType"] == PAYLOAD_TYPE_INTOTO
    assert base64.b64decode(envelope["payload"]) == STATEMENT
    [signature] = envelope["signatures"]
    assert signature["keyid"] == key.public_key.keyid
    key.public_key.verify(base64.b64decode(signature["sig"]), pae(PAYLOAD_TYPE_INTOTO, STATEMENT))


def test_round_trip_through_a_jsonl_line(key: SigningKey, trusted: dict[str, PublicKey]) -> None:
    line = serialize_envelope(sign_envelope(STATEMENT, key))
    assert b"\n" not in line and b" " not in line
    assert line.startswith(b'{"payload":"')  # RFC 8785 sorts keys
    assert serialize_envelope(json.loads(line)) == line
    assert verify_envelope(json.loads(line), trusted) == STATEMENT
    assert envelope_digest(line) == hashlib.sha256(line).hexdigest()


def test_custom_payload_type(key: SigningKey, trusted: dict[str, PublicKey]) -> None:
    envelope = sign_envelope(b"hello", key, payload_type="text/plain")
    assert verify_envelope(envelope, trusted) == b"hello"


def test_unknown_signatures_are_ignored_when_a_trusted_one_verifies(
    key: SigningKey, trusted: dict[str, PublicKey]
) -> None:
    envelope = sign_envelope(STATEMENT, key)
    other = sign_envelope(STATEMENT, SigningKey.generate())
    envelope["signatures"] = other["signatures"] + envelope["signatures"]
    assert verify_envelope(envelope, trusted) == STATEMENT


def test_signature_without_keyid_is_tried_against_trusted_keys(
    key: SigningKey, trusted: dict[str, PublicKey]
) -> None:
    envelope = sign_envelope(STATEMENT, key)
    del envelope["signatures"][0]["keyid"]
    assert verify_envelope(envelope, trusted) == STATEMENT
    envelope["signatures"][0]["keyid"] = ""
    assert verify_envelope(envelope, trusted) == STATEMENT
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        verify_envelope(envelope, {"k": SigningKey.generate().public_key})


def test_unknown_keyid_is_rejected(key: SigningKey) -> None:
    envelope = sign_envelope(STATEMENT, key)
    with pytest.raises(VerificationError, match=f"signed by {key.public_key.keyid}"):
        verify_envelope(envelope, {})


def _reencoded(payload: bytes) -> str:
    return base64.b64encode(payload).decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payload", _reencoded(STATEMENT.replace(b"Statement", b"Statemenu"))),
        ("payloadType", "application/json"),
    ],
)
def test_altered_envelope_fails_the_signature(
    key: SigningKey, trusted: dict[str, PublicKey], field: str, value: str
) -> None:
    envelope = sign_envelope(STATEMENT, key)
    envelope[field] = value
    with pytest.raises(VerificationError, match=r"signatures\[0\].*does not verify"):
        verify_envelope(envelope, trusted)


def test_flipped_signature_bit_fails(key: SigningKey, trusted: dict[str, PublicKey]) -> None:
    envelope = sign_envelope(STATEMENT, key)
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[10] ^= 0x20
    envelope["signatures"][0]["sig"] = _reencoded(bytes(sig))
    with pytest.raises(VerificationError, match="does not verify"):
        verify_envelope(envelope, trusted)


def test_a_failing_trusted_signature_rejects_even_beside_a_good_one(
    key: SigningKey, trusted: dict[str, PublicKey]
) -> None:
    envelope = sign_envelope(STATEMENT, key)
    bad = dict(envelope["signatures"][0], sig=_reencoded(b"\x00" * 64))
    envelope["signatures"].append(bad)
    with pytest.raises(VerificationError, match=r"signatures\[1\]"):
        verify_envelope(envelope, trusted)


def _mutations() -> list[tuple[str, Any, str]]:
    def drop(name: str) -> Any:
        return lambda e: {k: v for k, v in e.items() if k != name}

    def put(name: str, value: Any) -> Any:
        return lambda e: {**e, name: value}

    def put_sig(name: str, value: Any) -> Any:
        return lambda e: {**e, "signatures": [{**e["signatures"][0], name: value}]}

    return [
        ("missing-payload", drop("payload"), "missing field.*payload"),
        ("missing-type", drop("payloadType"), "missing field.*payloadType"),
        ("missing-signatures", drop("signatures"), "missing field.*signatures"),
        ("extra-field", put("payloadHash", "x"), "unexpected field.*payloadHash"),
        ("type-not-str", put("payloadType", 7), "payloadType"),
        ("type-empty", put("payloadType", ""), "payloadType"),
        ("payload-not-str", put("payload", 7), "'payload'.*base64 string"),
        ("payload-bad-char", put("payload", "ab$d"), "'payload'.*not valid"),
        ("payload-no-padding", put("payload", "YQ"), "'payload'"),
        ("payload-urlsafe", put("payload", "-_-_"), "'payload'.*not valid"),
        ("payload-noncanonical", put("payload", "YR=="), "'payload'.*canonical"),
        ("signatures-not-list", put("signatures", {}), "non-empty list"),
        ("signatures-empty", put("signatures", []), "non-empty list"),
        ("signature-not-object", put("signatures", ["sig"]), r"signatures\[0\]"),
        ("sig-missing", lambda e: {**e, "signatures": [{"keyid": "k"}]}, "missing field 'sig'"),
        ("sig-extra-field", put_sig("cert", "x"), "unexpected field.*cert"),
        ("keyid-not-str", put_sig("keyid", 3), "'keyid' must be a string"),
        ("sig-bad-base64", put_sig("sig", "%%%"), r"signatures\[0\] field 'sig'"),
        ("sig-empty", put_sig("sig", ""), "'sig' is empty"),
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(m, msg) for _, m, msg in _mutations()],
    ids=[n for n, *_ in _mutations()],
)
def test_malformed_envelope_is_rejected_naming_the_field(
    key: SigningKey, trusted: dict[str, PublicKey], mutate: Any, message: str
) -> None:
    envelope = mutate(sign_envelope(STATEMENT, key))
    with pytest.raises(VerificationError, match=message):
        verify_envelope(envelope, trusted)


def test_non_object_envelope_is_rejected(trusted: dict[str, PublicKey]) -> None:
    with pytest.raises(VerificationError, match="expected a JSON object"):
        verify_envelope([], trusted)  # type: ignore[arg-type]
