"""Standard base64 (RFC 4648 section 4), encoded and strictly decoded, for the protocol modules.

DSSE envelopes, signed notes, checkpoints and tlog proofs all carry standard, padded base64.
Decoding here is strict: only the standard alphabet, correct padding, and the canonical encoding
(re-encoding gives back the same text), so one value has exactly one spelling in a signed record.
"""

from __future__ import annotations

import base64
import binascii

from pox_executor.errors import VerificationError


def b64encode(data: bytes) -> str:
    """Standard padded base64 of `data` as an ASCII string."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, *, where: str) -> bytes:
    """Decode canonical standard base64; `where` names the field in the error message."""
    if not isinstance(text, str):
        raise VerificationError(f"{where}: expected a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise VerificationError(f"{where}: not valid standard base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{where}: base64 is not in canonical form")
    return raw
