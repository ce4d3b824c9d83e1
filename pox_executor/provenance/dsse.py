"""DSSE v1 envelopes: PAE, signing, canonical serialization and strict verification.

Implements the Dead Simple Signing Envelope protocol and its JSON envelope
(github.com/secure-systems-lab/dsse, `protocol.md` and `envelope.md`): signatures are made over
`PAE(payloadType, payload)`, never over the JSON. PoX writes one envelope per job, serialized as
RFC 8785 canonical JSON on one line of `attestations.intoto.jsonl`; the SHA-256 of that line is
the envelope digest that child jobs cite and the Merkle log commits to.

This module owns the envelope format only; what the payload says (the in-toto Statement) is
built elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from pox_executor.errors import VerificationError
from pox_executor.provenance._base64 import b64decode_strict, b64encode
from pox_executor.provenance.keys import PublicKey, SigningKey

PAYLOAD_TYPE_INTOTO = "application/vnd.in-toto+json"

_ENVELOPE_FIELDS = frozenset({"payloadType", "payload", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(
    payload: bytes, key: SigningKey, payload_type: str = PAYLOAD_TYPE_INTOTO
) -> dict[str, Any]:
    """A DSSE envelope holding `payload`, signed once by `key` (keyid = its `sha256:` id)."""
    signature = key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": b64encode(payload),
        "signatures": [{"keyid": key.public_key.keyid, "sig": b64encode(signature)}],
    }


def serialize_envelope(envelope: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the envelope: one line, no trailing newline."""
    return bytes(rfc8785.dumps(dict(envelope)))


def envelope_digest(line: bytes) -> str:
    """Hex SHA-256 of a serialized envelope (the jsonl line without its newline)."""
    return hashlib.sha256(line).hexdigest()


def verify_envelope(envelope: Mapping[str, Any], trusted: Mapping[str, PublicKey]) -> bytes:
    """Check an envelope's structure and signatures; return the authenticated payload bytes.

    `trusted` maps keyid to key. Signatures with a keyid not in `trusted` are ignored, but every
    signature whose keyid is trusted must verify, and at least one must: a failing signature by
    a trusted key means the envelope was altered, so it is rejected rather than skipped. A
    signature without a keyid (DSSE makes it optional) is tried against every trusted key.
    """
    payload_type, payload, signatures = _parse_envelope(envelope)
    signed = pae(payload_type, payload)
    verified: list[str] = []
    seen: list[str] = []
    for position, (keyid, sig) in enumerate(signatures):
        where = f"DSSE envelope signatures[{position}]"
        if keyid:
            seen.append(keyid)
            key = trusted.get(keyid)
            if key is None:
                continue
            try:
                key.verify(sig, signed)
            except VerificationError:
                raise VerificationError(
                    f"{where}: signature by trusted key {keyid} does not verify over the "
                    f"payload (payloadType {payload_type!r}); the envelope was altered"
                ) from None
            verified.append(keyid)
        else:
            for candidate_id, candidate in trusted.items():
                try:
                    candidate.verify(sig, signed)
                except VerificationError:
                    continue
                verified.append(candidate_id)
                break
    if not verified:
        known = ", ".join(sorted(trusted)) or "none"
        found = ", ".join(seen) or "no keyids"
        raise VerificationError(
            f"DSSE envelope: no signature by a trusted key verifies (signed by {found}; "
            f"trusted: {known})",
            hint="check that the run's signing key is among the trusted keys",
        )
    return payload


def _parse_envelope(envelope: Mapping[str, Any]) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    if not isinstance(envelope, Mapping):
        raise VerificationError(
            f"DSSE envelope: expected a JSON object, got {type(envelope).__name__}"
        )
    missing = sorted(_ENVELOPE_FIELDS - envelope.keys())
    if missing:
        raise VerificationError(f"DSSE envelope: missing field(s) {', '.join(missing)}")
    unknown = sorted(str(k) for k in envelope.keys() - _ENVELOPE_FIELDS)
    if unknown:
        raise VerificationError(f"DSSE envelope: unexpected field(s) {', '.join(unknown)}")
    payload_type = envelope["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise VerificationError("DSSE envelope: field 'payloadType' must be a non-empty string")
    payload = b64decode_strict(envelope["payload"], where="DSSE envelope field 'payload'")
    raw_signatures = envelope["signatures"]
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise VerificationError("DSSE envelope: field 'signatures' must be a non-empty list")
    signatures: list[tuple[str, bytes]] = []
    for position, entry in enumerate(raw_signatures):
        where = f"DSSE envelope signatures[{position}]"
        if not isinstance(entry, Mapping):
            raise VerificationError(f"{where}: expected an object with keyid and sig")
        if "sig" not in entry:
            raise VerificationError(f"{where}: missing field 'sig'")
        unknown = sorted(str(k) for k in entry.keys() - _SIGNATURE_FIELDS)
        if unknown:
            raise VerificationError(f"{where}: unexpected field(s) {', '.join(unknown)}")
        keyid = entry.get("keyid", "")
        if not isinstance(keyid, str):
            raise VerificationError(f"{where}: field 'keyid' must be a string")
        sig = b64decode_strict(entry["sig"], where=f"{where} field 'sig'")
        if not sig:
            raise VerificationError(f"{where}: field 'sig' is empty")
        signatures.append((keyid, sig))
    return payload_type, payload, signatures
