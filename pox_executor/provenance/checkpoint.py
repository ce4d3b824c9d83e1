"""Log checkpoints as C2SP signed notes, with Ed25519 note signatures and verifier keys.

Implements c2sp.org/tlog-checkpoint (note text: origin, decimal tree size, base64 root hash,
optional extension lines) on top of c2sp.org/signed-note (text, blank line, one
`— <key name> base64(key ID || signature)` line per signature), signature type 0x01 (Ed25519),
key ID = first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key). Verifier keys use the
note verifier key encoding `<name>+<hex key ID>+base64(0x01 || public key)`.

This module owns the text format and its signatures; which origin and keys to trust is the
caller's policy, and the tree arithmetic lives in `merkle`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pox_executor.errors import VerificationError
from pox_executor.provenance._base64 import b64decode_strict, b64encode
from pox_executor.provenance.keys import KEY_SIZE_BYTES, PublicKey, SigningKey

SIGNATURE_TYPE_ED25519 = 0x01
KEY_ID_SIZE_BYTES = 4
ROOT_SIZE_BYTES = 32
MAX_SIGNATURES = 64  # the spec asks verifiers to accept at least 16 and to bound the number

_EM_DASH_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a checkpoint: which log, how many leaves, and the RFC 9162 root."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise VerificationError(
                f"checkpoint tree size must be an integer >= 0, got {self.size!r}"
            )
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE_BYTES:
            raise VerificationError(
                f"checkpoint root hash must be {ROOT_SIZE_BYTES} bytes, got {self.root!r}"
            )
        for position, line in enumerate(self.extensions):
            _check_line(line, f"checkpoint extension line {position + 1}")

    def body(self) -> str:
        """The note text that signatures cover, every line ending in a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note: key name, 4-byte key ID and signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


def note_key_id(name: str, key: PublicKey) -> bytes:
    """The signed-note key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + key.raw
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE_BYTES]


def vkey(name: str, key: PublicKey) -> str:
    """The note verifier key string `name+<key ID hex>+base64(0x01 || public key)`."""
    _check_key_name(name, "verifier key name")
    encoded = b64encode(bytes([SIGNATURE_TYPE_ED25519]) + key.raw)
    return f"{name}+{note_key_id(name, key).hex()}+{encoded}"


def parse_vkey(text: str) -> tuple[str, PublicKey]:
    """Parse a note verifier key string; its key ID must match the name and key it carries."""
    parts = text.strip().split("+", 2)  # names never hold '+', the base64 key may
    if len(parts) != 3:
        raise VerificationError(f"verifier key {text!r}: expected <name>+<key ID hex>+<base64 key>")
    name, key_id_hex, encoded = parts
    _check_key_name(name, f"verifier key {text!r}: name")
    if not _KEY_ID_HEX.fullmatch(key_id_hex):
        raise VerificationError(
            f"verifier key {text!r}: key ID must be 8 lowercase hex digits, got {key_id_hex!r}"
        )
    material = b64decode_strict(encoded, where=f"verifier key {name}: key")
    if len(material) != 1 + KEY_SIZE_BYTES or material[0] != SIGNATURE_TYPE_ED25519:
        raise VerificationError(
            f"verifier key {name}: expected signature type 0x01 (Ed25519) and a "
            f"{KEY_SIZE_BYTES}-byte key"
        )
    key = PublicKey(material[1:])
    if note_key_id(name, key).hex() != key_id_hex:
        raise VerificationError(
            f"verifier key {name}: key ID {key_id_hex} does not match the name and key"
        )
    return name, key


def sign_note(text: str, key_name: str, key: SigningKey) -> str:
    """A signed note: `text` (newline-terminated), a blank line, one Ed25519 signature line."""
    _check_key_name(key_name, "signing key name")
    if not text.endswith("\n"):
        raise VerificationError("note text to sign must end with a newline")
    _check_note_characters(text)
    signature = key.sign(text.encode("utf-8"))
    encoded = b64encode(note_key_id(key_name, key.public_key) + signature)
    return f"{text}\n{_EM_DASH_PREFIX}{key_name} {encoded}\n"


def sign_checkpoint(checkpoint: Checkpoint, key_name: str, key: SigningKey) -> str:
    """The full signed-note text of `checkpoint`, signed by `key` under `key_name`."""
    return sign_note(checkpoint.body(), key_name, key)


def split_signed_note(text: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and its parsed signature lines (format checks only)."""
    if not isinstance(text, str):
        raise VerificationError(f"signed note: expected text, got {type(text).__name__}")
    _check_note_characters(text)
    if not text.endswith("\n"):
        raise VerificationError("signed note: does not end with a newline")
    separator = text.rfind("\n\n")
    if separator < 0:
        raise VerificationError("signed note: no blank line between the text and the signatures")
    body = text[: separator + 1]
    if separator + 2 == len(text):
        raise VerificationError("signed note: no signature lines after the blank line")
    signature_lines = text[separator + 2 : -1].split("\n")
    first_line = body.count("\n") + 2
    if len(signature_lines) > MAX_SIGNATURES:
        raise VerificationError(
            f"signed note: {len(signature_lines)} signature lines, more than the "
            f"{MAX_SIGNATURES} accepted"
        )
    signatures = [
        _parse_signature_line(line, first_line + offset)
        for offset, line in enumerate(signature_lines)
    ]
    return body, signatures


def parse_signed_note(text: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a signed checkpoint strictly, without verifying any signature."""
    body, signatures = split_signed_note(text)
    return _parse_checkpoint_body(body), signatures


def verify_checkpoint(
    text: str, verifiers: Mapping[str, PublicKey], *, origin: str | None = None
) -> Checkpoint:
    """Parse a signed checkpoint and check its signatures against `verifiers` (name -> key).

    As the signed-note spec says, signatures whose (name, key ID) is not a known key are
    ignored; a known key whose signature fails rejects the whole note; at least one known key
    must have signed. With `origin`, the checkpoint must also come from that log.
    """
    body, signatures = split_signed_note(text)
    checkpoint = _parse_checkpoint_body(body)
    signed = body.encode("utf-8")
    verified: list[str] = []
    for signature in signatures:
        key = verifiers.get(signature.name)
        if key is None or note_key_id(signature.name, key) != signature.key_id:
            continue
        try:
            key.verify(signature.signature, signed)
        except VerificationError:
            raise VerificationError(
                f"checkpoint {checkpoint.origin} at size {checkpoint.size}: the signature by "
                f"{signature.name} does not verify; the note was altered or forged"
            ) from None
        verified.append(signature.name)
    if not verified:
        names = ", ".join(s.name for s in signatures)
        raise VerificationError(
            f"checkpoint {checkpoint.origin} at size {checkpoint.size}: no signature by a known "
            f"key (signed by {names}; known: {', '.join(sorted(verifiers)) or 'none'})",
            hint="pass the log's verifier key",
        )
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint origin is {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


def _parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError(
            f"checkpoint: note text has {len(lines)} line(s); origin, tree size and root hash "
            "are required"
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise VerificationError(f"checkpoint line {number}: empty line in the note text")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise VerificationError(
            f"checkpoint line 2 (tree size): expected a decimal with no leading zeroes, "
            f"got {size_text!r}"
        )
    root = b64decode_strict(root_text, where="checkpoint line 3 (root hash)")
    if len(root) != ROOT_SIZE_BYTES:
        raise VerificationError(
            f"checkpoint line 3 (root hash): expected {ROOT_SIZE_BYTES} bytes, got {len(root)}"
        )
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    where = f"signed note line {number} (signature)"
    if not line.startswith(_EM_DASH_PREFIX):
        raise VerificationError(f"{where}: must start with an em dash and a space, got {line!r}")
    parts = line[len(_EM_DASH_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise VerificationError(f"{where}: expected '\u2014 <key name> <base64 signature>'")
    name, encoded = parts
    _check_key_name(name, f"{where}: key name")
    raw = b64decode_strict(encoded, where=f"{where} by {name}")
    if len(raw) <= KEY_ID_SIZE_BYTES:
        raise VerificationError(f"{where} by {name}: too short to hold a key ID and a signature")
    return NoteSignature(name, raw[:KEY_ID_SIZE_BYTES], raw[KEY_ID_SIZE_BYTES:])


def _check_key_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name:
        raise VerificationError(f"{what}: must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name):
        raise VerificationError(f"{what} {name!r}: must not contain spaces or '+'")
    _check_note_characters(name)


def _check_line(line: str, what: str) -> None:
    if not isinstance(line, str) or not line:
        raise VerificationError(f"{what}: must be a non-empty string")
    if "\n" in line:
        raise VerificationError(f"{what} {line!r}: must be a single line")
    _check_note_characters(line)


def _check_note_characters(text: str) -> None:
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise VerificationError(
            f"signed note line {line}: control character U+{ord(bad.group()):04X} is not allowed"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise VerificationError(f"signed note line {line}: not valid UTF-8 text") from None
