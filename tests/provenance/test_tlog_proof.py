"""C2SP tlog-proof@v1: exact layout, round trips, strict parsing and end-to-end verification."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pox_executor.errors import MerkleError, VerificationError
from pox_executor.provenance.checkpoint import Checkpoint, sign_checkpoint
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.merkle import MerkleTree, leaf_hash
from pox_executor.provenance.tlog_proof import (
    HEADER,
    TlogProof,
    format_proof,
    parse_proof,
    verify_proof,
)

ORIGIN = "pox/run/20261121-abc"
LOG_KEY = SigningKey.from_private_bytes(hashlib.sha256(b"pox test log key").digest())
VERIFIERS = {ORIGIN: LOG_KEY.public_key}
ENTRIES = [f"envelope {i}".encode() for i in range(11)]
LEAVES = [leaf_hash(entry) for entry in ENTRIES]
TREE = MerkleTree(LEAVES)
SIGNED = sign_checkpoint(Checkpoint(ORIGIN, TREE.size, TREE.root()), ORIGIN, LOG_KEY)
INDEX = 6
HASHES = TREE.inclusion_proof(INDEX)
PROOF = format_proof(INDEX, HASHES, SIGNED)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_layout_follows_the_spec() -> None:
    lines = PROOF.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" == HEADER
    assert lines[1] == "index 6"
    assert lines[2 : 2 + len(HASHES)] == [_b64(h) for h in HASHES]
    assert lines[2 + len(HASHES)] == ""
    assert "\n".join(lines[3 + len(HASHES) :]) == SIGNED
    assert PROOF.endswith(SIGNED)


def test_round_trip() -> None:
    proof = parse_proof(PROOF)
    assert proof == TlogProof(INDEX, tuple(HASHES), SIGNED, None)
    assert proof.format() == PROOF


def test_extra_line_round_trip() -> None:
    text = format_proof(INDEX, HASHES, SIGNED, extra=b"job:align")
    assert text.split("\n")[1] == "extra " + _b64(b"job:align")
    assert text.split("\n")[2] == "index 6"
    assert parse_proof(text).extra == b"job:align"
    assert parse_proof(format_proof(0, [], SIGNED, extra=b"")).extra == b""


def test_single_leaf_tree_has_no_hash_lines() -> None:
    tree = MerkleTree(LEAVES[:1])
    signed = sign_checkpoint(Checkpoint(ORIGIN, 1, tree.root()), ORIGIN, LOG_KEY)
    text = format_proof(0, tree.inclusion_proof(0), signed)
    assert text.startswith(f"{HEADER}\nindex 0\n\n{ORIGIN}\n1\n")
    proof, checkpoint = verify_proof(text, LEAVES[0], VERIFIERS, origin=ORIGIN)
    assert proof.hashes == () and checkpoint.size == 1


def test_verify_every_leaf() -> None:
    for index, leaf in enumerate(LEAVES):
        text = format_proof(index, TREE.inclusion_proof(index), SIGNED)
        proof, checkpoint = verify_proof(text, leaf, VERIFIERS, origin=ORIGIN)
        assert proof.index == index
        assert checkpoint.root == TREE.root()


def test_wrong_leaf_fails_inclusion() -> None:
    with pytest.raises(MerkleError, match="leaf 6"):
        verify_proof(PROOF, LEAVES[5], VERIFIERS)


def test_edited_index_fails_inclusion() -> None:
    with pytest.raises(MerkleError):
        verify_proof(PROOF.replace("index 6", "index 7"), LEAVES[6], VERIFIERS)


def test_flipped_hash_fails_inclusion() -> None:
    wrong = list(HASHES)
    wrong[1] = bytes([wrong[1][0] ^ 0x80]) + wrong[1][1:]
    with pytest.raises(MerkleError, match="expected root"):
        verify_proof(format_proof(INDEX, wrong, SIGNED), LEAVES[INDEX], VERIFIERS)


def test_checkpoint_from_an_unknown_key_fails() -> None:
    with pytest.raises(VerificationError, match="no signature by a known key"):
        verify_proof(PROOF, LEAVES[INDEX], {ORIGIN: SigningKey.generate().public_key})


def test_checkpoint_for_another_log_fails() -> None:
    with pytest.raises(VerificationError, match="expected 'pox/run/other'"):
        verify_proof(PROOF, LEAVES[INDEX], VERIFIERS, origin="pox/run/other")


def test_forged_checkpoint_size_fails_the_signature() -> None:
    forged = PROOF.replace(f"\n{ORIGIN}\n11\n", f"\n{ORIGIN}\n12\n")
    assert forged != PROOF
    with pytest.raises(VerificationError, match="does not verify"):
        verify_proof(forged, LEAVES[INDEX], VERIFIERS)


def _malformed() -> list[tuple[str, str, str]]:
    head, rest = PROOF.split("\nindex 6\n", 1)
    hash_lines, checkpoint = rest.split("\n\n", 1)
    first_hash = hash_lines.split("\n")[0]
    return [
        ("wrong-header", PROOF.replace(HEADER, "c2sp.org/tlog-proof@v2"), "line 1"),
        ("no-index", f"{HEADER}\n{hash_lines}\n\n{checkpoint}", "line 2: expected 'index"),
        ("leading-zero", PROOF.replace("index 6", "index 06"), "line 2: expected 'index"),
        ("negative", PROOF.replace("index 6", "index -6"), "line 2: expected 'index"),
        ("two-spaces", PROOF.replace("index 6", "index  6"), "line 2: expected 'index"),
        ("extra-after-index", PROOF.replace("index 6\n", "index 6\nextra AA==\n"), "line 3 "),
        ("bad-extra", PROOF.replace("index 6", "extra !!\nindex 6"), "line 2 \\(extra\\)"),
        ("short-hash", PROOF.replace(first_hash, "AAAA"), "line 3 .*32 bytes"),
        ("bad-hash", PROOF.replace(first_hash, first_hash[1:]), "line 3 .*base64"),
        ("no-checkpoint", f"{head}\nindex 6\n{hash_lines}\n", "no signed checkpoint"),
        ("empty-checkpoint", f"{head}\nindex 6\n{hash_lines}\n\n", "no signed checkpoint"),
        ("bad-checkpoint", PROOF.replace(f"{ORIGIN}\n11", f"{ORIGIN}\n011"), "line 2 \\(tree"),
        ("checkpoint-no-newline", PROOF[:-1], "checkpoint starting at line 8: .*newline"),
        ("empty", "", "line 1"),
    ]


MALFORMED = _malformed()


@pytest.mark.parametrize(
    ("text", "message"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_proofs_are_rejected_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        parse_proof(text)


def test_too_many_hashes_are_rejected() -> None:
    with pytest.raises(VerificationError, match="at most 64"):
        format_proof(0, [bytes(32)] * 65, SIGNED)
    lines = [HEADER, "index 0", *([_b64(bytes(32))] * 65), "", SIGNED]
    with pytest.raises(VerificationError, match="more than 64"):
        parse_proof("\n".join(lines))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, HASHES, SIGNED), "index must be"),
        ((0, [b"short"], SIGNED), r"inclusion hash \[0\]"),
        ((0, HASHES, "not a note\n"), "signed note"),
    ],
)
def test_format_refuses_bad_input(args: tuple[int, list[bytes], str], message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        format_proof(*args)
