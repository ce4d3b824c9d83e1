"""Offline inclusion proofs in the C2SP tlog-proof@v1 text format.

Implements c2sp.org/tlog-proof: the line `c2sp.org/tlog-proof@v1`, an optional
`extra <base64>` line (opaque, unauthenticated data), `index <n>`, the RFC 9162 inclusion proof
one base64 SHA-256 hash per line from the leaf's sibling up, an empty line, then the signed
checkpoint verbatim (c2sp.org/tlog-checkpoint). Files conventionally end in `.tlog-proof`.

This module owns the text format and the end-to-end check (checkpoint signature, then
inclusion); the checkpoint format lives in `checkpoint`, the tree arithmetic in `merkle`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pox_executor.errors import VerificationError
from pox_executor.provenance._base64 import b64decode_strict, b64encode
from pox_executor.provenance.checkpoint import Checkpoint, parse_signed_note, verify_checkpoint
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.merkle import HASH_SIZE_BYTES, verify_inclusion

HEADER = "c2sp.org/tlog-proof@v1"
FILE_SUFFIX = ".tlog-proof"
MAX_PROOF_HASHES = 64  # an RFC 9162 path in a tree of fewer than 2**64 leaves

_INDEX_LINE = re.compile(r"index (0|[1-9][0-9]*)")


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog proof: leaf index, inclusion hashes, the signed checkpoint, extra data."""

    index: int
    hashes: tuple[bytes, ...]
    signed_checkpoint: str
    extra: bytes | None = None

    def format(self) -> str:
        return format_proof(self.index, self.hashes, self.signed_checkpoint, self.extra)


def format_proof(
    index: int, hashes: Sequence[bytes], signed_checkpoint: str, extra: bytes | None = None
) -> str:
    """The tlog-proof@v1 text for leaf `index`, its inclusion `hashes` and a signed checkpoint."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise VerificationError(f"tlog proof: index must be an integer >= 0, got {index!r}")
    if len(hashes) > MAX_PROOF_HASHES:
        raise VerificationError(f"tlog proof: {len(hashes)} hashes, at most {MAX_PROOF_HASHES}")
    for position, value in enumerate(hashes):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE_BYTES:
            raise VerificationError(
                f"tlog proof: inclusion hash [{position}] must be {HASH_SIZE_BYTES} bytes"
            )
    parse_signed_note(signed_checkpoint)  # refuse to package a malformed checkpoint
    lines = [HEADER]
    if extra is not None:
        lines.append(f"extra {b64encode(extra)}")
    lines.append(f"index {index}")
    lines.extend(b64encode(value) for value in hashes)
    return "\n".join(lines) + "\n\n" + signed_checkpoint


def parse_proof(text: str) -> TlogProof:
    """Parse tlog-proof@v1 text strictly; the checkpoint is checked for form, not signatures."""
    if not isinstance(text, str):
        raise VerificationError(f"tlog proof: expected text, got {type(text).__name__}")
    lines = text.split("\n")
    if lines[0] != HEADER:
        raise VerificationError(f"tlog proof line 1: expected {HEADER!r}, got {lines[0][:80]!r}")
    number = 1
    extra = None
    if len(lines) > number and lines[number].startswith("extra "):
        extra = b64decode_strict(
            lines[number][len("extra ") :], where=f"tlog proof line {number + 1} (extra)"
        )
        number += 1
    index_line = lines[number] if len(lines) > number else ""
    match = _INDEX_LINE.fullmatch(index_line)
    if match is None:
        raise VerificationError(
            f"tlog proof line {number + 1}: expected 'index <n>' (decimal, no leading zeroes), "
            f"got {index_line[:80]!r}"
        )
    number += 1
    hashes: list[bytes] = []
    while number < len(lines) and lines[number]:
        where = f"tlog proof line {number + 1} (inclusion hash {len(hashes)})"
        value = b64decode_strict(lines[number], where=where)
        if len(value) != HASH_SIZE_BYTES:
            raise VerificationError(f"{where}: expected {HASH_SIZE_BYTES} bytes, got {len(value)}")
        hashes.append(value)
        if len(hashes) > MAX_PROOF_HASHES:
            raise VerificationError(f"tlog proof: more than {MAX_PROOF_HASHES} inclusion hashes")
        number += 1
    signed_checkpoint = "\n".join(lines[number + 1 :])
    if not signed_checkpoint:
        raise VerificationError(
            f"tlog proof line {number + 1}: no signed checkpoint after the inclusion hashes "
            "(expected an empty line, then the checkpoint)"
        )
    try:
        parse_signed_note(signed_checkpoint)
    except VerificationError as exc:
        raise VerificationError(
            f"tlog proof: checkpoint starting at line {number + 2}: {exc}"
        ) from None
    return TlogProof(int(match.group(1)), tuple(hashes), signed_checkpoint, extra)


def verify_proof(
    text: str,
    leaf_hash: bytes,
    verifiers: Mapping[str, PublicKey],
    *,
    origin: str | None = None,
) -> tuple[TlogProof, Checkpoint]:
    """Check a tlog proof end to end: the checkpoint is signed by a known key (and comes from
    `origin` if given), and `leaf_hash` sits at the proof's index in the checkpointed tree."""
    proof = parse_proof(text)
    checkpoint = verify_checkpoint(proof.signed_checkpoint, verifiers, origin=origin)
    verify_inclusion(leaf_hash, proof.index, checkpoint.size, proof.hashes, checkpoint.root)
    return proof, checkpoint
