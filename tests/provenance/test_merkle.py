"""RFC 9162 Merkle trees: the published RFC 6962 test vectors, tamper probes, and properties.

The vectors (8 leaves, their roots, inclusion and consistency paths) are those used by
certificate-transparency and transparency-dev/merkle; the expected hex values are typed here.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pox_executor.errors import MerkleError
from pox_executor.provenance.merkle import (
    EMPTY_ROOT,
    CompactTree,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
LEAF_HASHES = [leaf_hash(d) for d in LEAVES]

# ROOTS[n - 1] is the root of the tree of the first n leaves.
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def _hexes(*values: str) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# (leaf index, tree size, path)
INCLUSION_VECTORS = [
    (
        0,
        8,
        _hexes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hexes(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hexes("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hexes(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (0, 1, []),
]

# (old size, new size, path)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _hexes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hexes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hexes(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hexes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH straight from the RFC's recursive definition, as an independent oracle."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def synthetic_leaves(count: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(count)]


def flip_bit(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# --- hashing and roots ---------------------------------------------------------------------


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_empty_tree_root() -> None:
    assert root([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert CompactTree().root() == EMPTY_ROOT
    assert MerkleTree([]).root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_published_vectors(size: int) -> None:
    hashes = LEAF_HASHES[:size]
    assert root(hashes) == ROOTS[size - 1]
    assert CompactTree(hashes).root() == ROOTS[size - 1]
    assert MerkleTree(hashes).root() == ROOTS[size - 1]
    assert MerkleTree(LEAF_HASHES).root_at(size) == ROOTS[size - 1]


def test_all_root_computations_agree_with_the_rfc_definition_up_to_70_leaves() -> None:
    leaves = synthetic_leaves(70)
    compact = CompactTree()
    for size in range(71):
        expected = reference_root(leaves[:size])
        assert compact.size == size
        assert compact.root() == expected
        assert root(leaves[:size]) == expected
        assert MerkleTree(leaves).root_at(size) == expected
        if size < 70:
            compact.append(leaves[size])


def test_root_rejects_a_malformed_leaf_hash_naming_its_index() -> None:
    with pytest.raises(MerkleError, match="leaf hash at index 2"):
        root([SOME_HASH, SOME_HASH, b"short"])


# --- inclusion -----------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, path: list[bytes]) -> None:
    assert inclusion_proof(LEAF_HASHES[:size], index) == path
    assert MerkleTree(LEAF_HASHES).inclusion_proof(index, size) == path
    verify_inclusion(LEAF_HASHES[index], index, size, path, ROOTS[size - 1])


def _inclusion_probes(
    index: int, size: int, path: list[bytes], good_root: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index-1", index - 1, size, path, good_root, leaf),
        ("index+1", index + 1, size, path, good_root, leaf),
        ("index^2", index ^ 2, size, path, good_root, leaf),
        ("size*2", index, size * 2, path, good_root, leaf),
        ("size/2", index, size // 2, path, good_root, leaf),
        ("wrong-leaf", index, size, path, good_root, SOME_HASH),
        ("empty-root", index, size, path, EMPTY_ROOT, leaf),
        ("random-root", index, size, path, SOME_HASH, leaf),
        ("trailing-root", index, size, [*path, good_root], good_root, leaf),
        ("preceding-root", index, size, [good_root, *path], good_root, leaf),
        ("short-hash", index, size, [*path, b""], good_root, leaf),
    ]
    for position in range(len(path)):
        wrong = list(path)
        wrong[position] = flip_bit(wrong[position], 3)
        probes.append((f"flipped-{position}", index, size, wrong, good_root, leaf))
    if path:
        probes.append(("removed-last", index, size, path[:-1], good_root, leaf))
    if len(path) > 1:
        probes.append(("inserted", index, size, [path[0], SOME_HASH, *path[1:]], good_root, leaf))
    return probes


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_tamper_probes_all_fail(index: int, size: int, path: list[bytes]) -> None:
    probes = _inclusion_probes(index, size, path, ROOTS[size - 1], LEAF_HASHES[index])
    for name, i, n, p, r, leaf in probes:
        with pytest.raises(MerkleError):
            verify_inclusion(leaf, i, n, p, r)
            pytest.fail(f"probe {name} verified")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 4)])
def test_inclusion_outside_the_tree_is_rejected(index: int, size: int) -> None:
    with pytest.raises(MerkleError, match="not inside a tree"):
        verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)


def test_inclusion_error_messages_say_what_went_wrong() -> None:
    path = INCLUSION_VECTORS[0][2]
    with pytest.raises(MerkleError, match="too many"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, [*path, SOME_HASH], ROOTS[7])
    with pytest.raises(MerkleError, match="too few"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, path[:2], ROOTS[7])
    with pytest.raises(MerkleError, match="expected root"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, path, ROOTS[6])
    with pytest.raises(MerkleError, match=r"hash \[1\]"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, [path[0], b"x"], ROOTS[7])
    with pytest.raises(MerkleError, match="root: expected a 32-byte"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, path, b"")


def test_inclusion_proof_generation_rejects_bad_index() -> None:
    with pytest.raises(MerkleError, match="leaf index 8"):
        inclusion_proof(LEAF_HASHES, 8)
    with pytest.raises(MerkleError, match="tree size 9"):
        MerkleTree(LEAF_HASHES).inclusion_proof(0, 9)


def test_every_inclusion_proof_verifies_up_to_70_leaves() -> None:
    leaves = synthetic_leaves(70)
    tree = MerkleTree(leaves)
    for size in range(1, 71):
        expected_root = reference_root(leaves[:size])
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert root_from_inclusion_proof(leaves[index], index, size, proof) == expected_root
            verify_inclusion(leaves[index], index, size, proof, expected_root)
    assert inclusion_proof(leaves, 69) == tree.inclusion_proof(69)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_breaks_an_inclusion_proof(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, 70), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaves = synthetic_leaves(size)
    proof = inclusion_proof(leaves, index)
    good_root = root(leaves)
    target = data.draw(st.sampled_from(["leaf", "root", "proof"]), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    leaf = leaves[index]
    if target == "leaf":
        leaf = flip_bit(leaf, bit)
    elif target == "root":
        good_root = flip_bit(good_root, bit)
    else:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        proof[position] = flip_bit(proof[position], bit)
    with pytest.raises(MerkleError):
        verify_inclusion(leaf, index, size, proof, good_root)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_proof_does_not_verify_for_another_index(data: st.DataObject) -> None:
    # (A proof may verify for another tree size with the same path shape: the root binds the
    # tree, and the signed checkpoint binds the size.)
    size = data.draw(st.integers(2, 70), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaves = synthetic_leaves(size)
    proof = inclusion_proof(leaves, index)
    other_index = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
    with pytest.raises(MerkleError):
        verify_inclusion(leaves[index], other_index, size, proof, root(leaves))


# --- consistency ---------------------------------------------------------------------------


@pytest.mark.parametrize(("old_size", "new_size", "path"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old_size: int, new_size: int, path: list[bytes]) -> None:
    assert consistency_proof(LEAF_HASHES[:new_size], old_size) == path
    assert MerkleTree(LEAF_HASHES).consistency_proof(old_size, new_size) == path
    verify_consistency(old_size, new_size, ROOTS[old_size - 1], ROOTS[new_size - 1], path)


@pytest.mark.parametrize(("old_size", "new_size", "path"), CONSISTENCY_VECTORS[1:])
def test_consistency_tamper_probes_all_fail(
    old_size: int, new_size: int, path: list[bytes]
) -> None:
    old_root, new_root = ROOTS[old_size - 1], ROOTS[new_size - 1]
    probes: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("old-1", old_size - 1, new_size, old_root, new_root, path),
        ("old+1", old_size + 1, new_size, old_root, new_root, path),
        ("old^2", old_size ^ 2, new_size, old_root, new_root, path),
        ("new*2", old_size, new_size * 2, old_root, new_root, path),
        ("new/2", old_size, new_size // 2, old_root, new_root, path),
        ("wrong-old-root", old_size, new_size, SOME_HASH, new_root, path),
        ("wrong-new-root", old_size, new_size, old_root, SOME_HASH, path),
        ("swapped-roots", old_size, new_size, new_root, old_root, path),
        ("empty-proof", old_size, new_size, old_root, new_root, []),
        ("trailing-old-root", old_size, new_size, old_root, new_root, [*path, old_root]),
        ("trailing-new-root", old_size, new_size, old_root, new_root, [*path, new_root]),
        ("preceding-old-root", old_size, new_size, old_root, new_root, [old_root, *path]),
        ("preceding-new-root", old_size, new_size, old_root, new_root, [new_root, *path]),
        ("preceding-first", old_size, new_size, old_root, new_root, [path[0], *path]),
        ("truncated", old_size, new_size, old_root, new_root, path[:-1]),
    ]
    for position in range(len(path)):
        wrong = list(path)
        wrong[position] = flip_bit(wrong[position], 4)
        probes.append((f"flipped-{position}", old_size, new_size, old_root, new_root, wrong))
    for name, m, n, r1, r2, p in probes:
        with pytest.raises(MerkleError):
            verify_consistency(m, n, r1, r2, p)
            pytest.fail(f"probe {name} verified")


def test_trivial_consistency_cases() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    with pytest.raises(MerkleError, match="different roots"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    with pytest.raises(MerkleError, match="must be empty"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[2], [SOME_HASH])
    with pytest.raises(MerkleError, match="must be empty"):
        verify_consistency(0, 3, EMPTY_ROOT, ROOTS[2], [SOME_HASH])
    with pytest.raises(MerkleError, match="empty tree"):
        verify_consistency(0, 3, SOME_HASH, ROOTS[2], [])
    with pytest.raises(MerkleError, match="between 0 and new size"):
        verify_consistency(4, 3, ROOTS[3], ROOTS[2], [])
    with pytest.raises(MerkleError, match="is empty; hashes expected"):
        verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])
    with pytest.raises(MerkleError, match="old size 9"):
        consistency_proof(LEAF_HASHES, 9)
    assert consistency_proof(LEAF_HASHES, 0) == []
    assert consistency_proof(LEAF_HASHES, 8) == []


def test_consistency_between_all_pairs_up_to_70_leaves() -> None:
    leaves = synthetic_leaves(70)
    tree = MerkleTree(leaves)
    roots = [reference_root(leaves[:n]) for n in range(71)]
    for new_size in range(71):
        for old_size in range(new_size + 1):
            proof = tree.consistency_proof(old_size, new_size)
            verify_consistency(old_size, new_size, roots[old_size], roots[new_size], proof)
    assert consistency_proof(leaves, 33) == tree.consistency_proof(33)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_breaks_a_consistency_proof(data: st.DataObject) -> None:
    new_size = data.draw(st.integers(2, 70), label="new_size")
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    leaves = synthetic_leaves(new_size)
    proof = consistency_proof(leaves, old_size)
    old_root, new_root = root(leaves[:old_size]), root(leaves)
    target = data.draw(st.sampled_from(["old", "new", "proof"]), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    if target == "old":
        old_root = flip_bit(old_root, bit)
    elif target == "new":
        new_root = flip_bit(new_root, bit)
    else:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        proof[position] = flip_bit(proof[position], bit)
    with pytest.raises(MerkleError):
        verify_consistency(old_size, new_size, old_root, new_root, proof)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_forked_log_fails_consistency(data: st.DataObject) -> None:
    new_size = data.draw(st.integers(2, 70), label="new_size")
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    rewritten = data.draw(st.integers(0, old_size - 1), label="rewritten")
    leaves = synthetic_leaves(new_size)
    forked = list(leaves)
    forked[rewritten] = SOME_HASH
    proof = consistency_proof(forked, old_size)
    with pytest.raises(MerkleError):
        verify_consistency(old_size, new_size, root(leaves[:old_size]), root(forked), proof)


# --- compact tree --------------------------------------------------------------------------


def test_compact_tree_keeps_one_hash_per_set_bit_and_resumes() -> None:
    leaves = synthetic_leaves(45)
    tree = CompactTree.from_leaf_hashes(leaves[:37])
    assert tree.size == len(tree) == 37
    assert len(tree.nodes) == bin(37).count("1")
    resumed = CompactTree.from_nodes(tree.size, tree.nodes)
    for value in leaves[37:]:
        resumed.append(value)
    assert resumed.root() == root(leaves)


def test_compact_tree_rejects_bad_input() -> None:
    with pytest.raises(MerkleError, match="needs 2 subtree hashes, got 1"):
        CompactTree.from_nodes(3, [SOME_HASH])
    with pytest.raises(MerkleError, match=r"subtree hash \[0\]"):
        CompactTree.from_nodes(1, [b"x"])
    tree = CompactTree(synthetic_leaves(3))
    with pytest.raises(MerkleError, match="leaf hash at index 3"):
        tree.append(b"too short")
    assert tree.size == 3


def test_large_tree_roots_agree() -> None:
    leaves = synthetic_leaves(1 << 15 | 12345)
    expected = root(leaves)
    assert CompactTree(leaves).root() == expected
    tree = MerkleTree(leaves)
    assert tree.root() == expected
    index = 31_337
    verify_inclusion(leaves[index], index, len(leaves), tree.inclusion_proof(index), expected)
