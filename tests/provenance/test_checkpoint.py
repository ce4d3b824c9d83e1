"""C2SP checkpoints and signed notes: the Go sumdb/note vector, strict parsing, verification."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pox_executor.errors import VerificationError
from pox_executor.provenance.checkpoint import (
    Checkpoint,
    NoteSignature,
    note_key_id,
    parse_signed_note,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    split_signed_note,
    verify_checkpoint,
    vkey,
)
from pox_executor.provenance.keys import PublicKey, SigningKey
from pox_executor.provenance.merkle import leaf_hash, root

# golang.org/x/mod/sumdb/note: the documented example key pair and signed note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_MATERIAL = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # 0x01 || Ed25519 seed
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# transparency-dev/formats test key whose base64 contains a '+'.
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"

ORIGIN = "pox/run/20261121-abc"
ROOT = root([leaf_hash(b"one"), leaf_hash(b"two"), leaf_hash(b"three")])


# A fixed key, so that malformed variants of one signed checkpoint can be listed up front.
LOG_KEY = SigningKey.from_private_bytes(hashlib.sha256(b"pox test log key").digest())
SIGNED = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), ORIGIN, LOG_KEY)


@pytest.fixture
def key() -> SigningKey:
    return LOG_KEY


@pytest.fixture
def signed() -> str:
    return SIGNED


def _go_signing_key() -> SigningKey:
    return SigningKey.from_private_bytes(base64.b64decode(GO_SKEY_MATERIAL)[1:])


# --- interop with the Go reference -------------------------------------------------------


def test_go_vector_is_reproduced_byte_for_byte() -> None:
    name, public = parse_vkey(GO_VKEY)
    assert name == "PeterNeumann"
    key = _go_signing_key()
    assert key.public_key == public
    assert vkey(name, public) == GO_VKEY
    assert sign_note(GO_TEXT, name, key) == GO_NOTE
    body, [signature] = split_signed_note(GO_NOTE)
    assert body == GO_TEXT
    assert signature.name == name and signature.key_id == bytes.fromhex("c74f20a3")
    public.verify(signature.signature, GO_TEXT.encode())


def test_vkey_with_a_plus_in_its_base64_parses() -> None:
    name, public = parse_vkey(PLUS_VKEY)
    assert name == "TEST"
    assert vkey(name, public) == PLUS_VKEY


def test_note_key_id_is_the_spec_hash() -> None:
    _, public = parse_vkey(GO_VKEY)
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + public.raw).digest()[:4]
    assert note_key_id("PeterNeumann", public) == expected == bytes.fromhex("c74f20a3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PeterNeumann+c74f20a3", "expected <name>"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "base64"),
        ("PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "Ed25519"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "non-empty"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "spaces"),
    ],
)
def test_malformed_vkeys_are_rejected(text: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        parse_vkey(text)


def test_every_truncation_of_a_vkey_is_rejected() -> None:
    for end in range(len(GO_VKEY)):
        with pytest.raises(VerificationError):
            parse_vkey(GO_VKEY[:end])


# --- checkpoints --------------------------------------------------------------------------


def test_body_is_three_newline_terminated_lines() -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT)
    assert checkpoint.body() == f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\n"
    with_extension = Checkpoint(ORIGIN, 3, ROOT, ("ext one",))
    assert with_extension.body().endswith("\next one\n")


def test_sign_verify_round_trip(key: SigningKey, signed: str) -> None:
    lines = signed.split("\n")
    assert lines[3] == ""
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    assert signed.endswith("\n")
    checkpoint = verify_checkpoint(signed, {ORIGIN: key.public_key}, origin=ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 3, ROOT)
    parsed, [signature] = parse_signed_note(signed)
    assert parsed == checkpoint
    assert signature == NoteSignature(
        ORIGIN, note_key_id(ORIGIN, key.public_key), signature.signature
    )
    assert len(signature.signature) == 64


def test_empty_tree_checkpoint(key: SigningKey) -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 0, root([])), ORIGIN, key)
    assert verify_checkpoint(signed, {ORIGIN: key.public_key}).size == 0


def test_extension_lines_are_signed_and_parsed(key: SigningKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT, ("Timestamp: 1700000000",))
    signed = sign_checkpoint(checkpoint, ORIGIN, key)
    assert verify_checkpoint(signed, {ORIGIN: key.public_key}) == checkpoint
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(signed.replace("17000", "17001"), {ORIGIN: key.public_key})


def test_cosigned_note_verifies_with_either_key(key: SigningKey, signed: str) -> None:
    witness = SigningKey.generate()
    body, _ = split_signed_note(signed)
    cosigned = signed + sign_note(body, "witness.example", witness).split("\n\n")[-1]
    assert len(parse_signed_note(cosigned)[1]) == 2
    assert verify_checkpoint(cosigned, {"witness.example": witness.public_key}).size == 3
    verify_checkpoint(cosigned, {ORIGIN: key.public_key, "witness.example": witness.public_key})


def test_unknown_signatures_are_ignored(key: SigningKey, signed: str) -> None:
    stranger = SigningKey.generate()
    body, _ = split_signed_note(signed)
    extra = sign_note(body, "stranger.example", stranger).split("\n\n")[-1]
    assert verify_checkpoint(signed + extra, {ORIGIN: key.public_key}).size == 3


def test_same_name_different_key_is_ignored_not_failed(key: SigningKey, signed: str) -> None:
    # The (name, key ID) pair identifies a key: a same-name signature by another key is unknown.
    impostor = SigningKey.generate()
    body, _ = split_signed_note(signed)
    forged = sign_note(body, ORIGIN, impostor).split("\n\n")[-1]
    assert verify_checkpoint(signed + forged, {ORIGIN: key.public_key}).size == 3
    with pytest.raises(VerificationError, match="no signature by a known key"):
        verify_checkpoint(body + "\n" + forged, {ORIGIN: key.public_key})


def test_no_known_key_is_rejected(signed: str) -> None:
    with pytest.raises(VerificationError, match=f"signed by {ORIGIN}; known: other"):
        verify_checkpoint(signed, {"other": SigningKey.generate().public_key})
    with pytest.raises(VerificationError, match="known: none"):
        verify_checkpoint(signed, {})


def test_wrong_origin_is_rejected(key: SigningKey, signed: str) -> None:
    with pytest.raises(VerificationError, match="origin is 'pox/run/20261121-abc', expected"):
        verify_checkpoint(signed, {ORIGIN: key.public_key}, origin="pox/run/other")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n3\n", "\n4\n"),
        ("pox/run/20261121-abc\n", "pox/run/20261121-abd\n"),
        (base64.b64encode(ROOT).decode(), base64.b64encode(root([])).decode()),
    ],
    ids=["size", "origin", "root"],
)
def test_altered_body_fails_the_signature(key: SigningKey, signed: str, old: str, new: str) -> None:
    tampered = signed.replace(old, new, 1)
    assert tampered != signed
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(tampered, {ORIGIN: key.public_key})


def test_flipped_signature_bit_fails(key: SigningKey, signed: str) -> None:
    body, [signature] = split_signed_note(signed)
    raw = bytearray(signature.key_id + signature.signature)
    raw[20] ^= 1
    tampered = f"{body}\n\u2014 {ORIGIN} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(VerificationError, match=f"signature by {ORIGIN} does not verify"):
        verify_checkpoint(tampered, {ORIGIN: key.public_key})


def test_a_failing_known_signature_rejects_beside_a_good_one(key: SigningKey, signed: str) -> None:
    _, [signature] = split_signed_note(signed)
    bad = base64.b64encode(signature.key_id + bytes(64)).decode()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(f"{signed}\u2014 {ORIGIN} {bad}\n", {ORIGIN: key.public_key})


def _malformed(signed: str) -> list[tuple[str, str, str]]:
    body_lines, sig_block = signed.split("\n\n")
    body = body_lines + "\n"
    origin, size, root_line = body_lines.split("\n")
    sig_line = sig_block.rstrip("\n")
    name, encoded = sig_line[2:].split(" ")
    return [
        ("no-final-newline", signed[:-1], "does not end with a newline"),
        ("no-blank-line", body + sig_line + "\n", "no blank line"),
        ("no-signatures", body + "\n\n", "no signature lines"),
        ("two-lines", f"{origin}\n{size}\n\n{sig_line}\n", "note text has 2 line"),
        ("empty-origin", f"\n{size}\n{root_line}\n\n{sig_line}\n", "line 1: empty line"),
        ("leading-zero", f"{origin}\n03\n{root_line}\n\n{sig_line}\n", "line 2 .*leading"),
        ("negative", f"{origin}\n-3\n{root_line}\n\n{sig_line}\n", "line 2 "),
        ("non-ascii-digit", f"{origin}\n\u0663\n{root_line}\n\n{sig_line}\n", "line 2 "),
        ("short-root", f"{origin}\n{size}\nAAAA\n\n{sig_line}\n", "line 3 .*32 bytes"),
        ("bad-root", f"{origin}\n{size}\n{root_line[:-2]}\n\n{sig_line}\n", "line 3 "),
        ("empty-ext", f"{origin}\n{size}\n{root_line}\n\n\n{sig_line}\n", "line 4: empty"),
        ("hyphen-dash", f"{body}\n- {name} {encoded}\n", "line 5 .*em dash"),
        ("no-space", f"{body}\n\u2014{name} {encoded}\n", "line 5 .*em dash"),
        ("double-space", f"{body}\n\u2014 {name}  {encoded}\n", "line 5 "),
        ("no-signature", f"{body}\n\u2014 {name}\n", "line 5 "),
        ("bad-sig-base64", f"{body}\n\u2014 {name} {encoded[1:]}\n", "line 5 .*by " + name),
        ("short-sig", f"{body}\n\u2014 {name} AAAAAA==\n", "line 5 .*too short"),
        ("trailing-blank", f"{body}\n\u2014 {name} {encoded}\n\n", "no signature lines"),
        ("tab", f"{origin}\t\n{size}\n{root_line}\n\n{sig_line}\n", "line 1: control"),
        ("carriage-return", signed.replace("\n", "\r\n"), "line 1: control"),
        ("plus-in-name", f"{body}\n\u2014 a+b {encoded}\n", "line 5 .*'\\+'"),
    ]


MALFORMED = _malformed(SIGNED)


@pytest.mark.parametrize(
    ("text", "message"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_notes_are_rejected_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        parse_signed_note(text)


def test_too_many_signatures_are_rejected(key: SigningKey, signed: str) -> None:
    sig_line = signed.split("\n\n")[1]
    with pytest.raises(VerificationError, match="more than the 64 accepted"):
        parse_signed_note(signed + sig_line * 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "origin: must be a non-empty"),
        ({"origin": "a\nb"}, "single line"),
        ({"size": -1}, "tree size"),
        ({"size": True}, "tree size"),
        ({"root": b"short"}, "root hash must be 32 bytes"),
        ({"extensions": ("",)}, "extension line 1"),
    ],
)
def test_checkpoint_fields_are_validated(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"origin": ORIGIN, "size": 3, "root": ROOT, **kwargs}
    with pytest.raises(VerificationError, match=message):
        Checkpoint(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b"])
def test_bad_key_names_cannot_sign(key: SigningKey, name: str) -> None:
    with pytest.raises(VerificationError, match="signing key name"):
        sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), name, key)


def test_vkey_round_trip(key: SigningKey) -> None:
    text = vkey(ORIGIN, key.public_key)
    assert text.startswith(ORIGIN + "+")
    assert parse_vkey(text) == (ORIGIN, key.public_key)
    assert isinstance(parse_vkey(text)[1], PublicKey)
