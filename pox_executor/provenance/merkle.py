"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs, and a compact tree.

Implements RFC 9162 section 2.1 (the same tree as RFC 6962): leaf hash `SHA-256(0x00 || d)`,
interior node `SHA-256(0x01 || left || right)`, a tree of n leaves split at the largest power of
two smaller than n, the empty tree hashing to `SHA-256("")`. Proof generation follows the PATH
and PROOF definitions (2.1.3.1, 2.1.4.1), verification the algorithms of 2.1.3.2 and 2.1.4.2.

This module owns tree arithmetic only: it knows nothing of envelopes, files or checkpoints.
Callers pass leaf hashes (32-byte SHA-256 values), never raw entries, except to `leaf_hash`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from pox_executor.errors import MerkleError

HASH_SIZE_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of one entry: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE_BYTES:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise MerkleError(f"{what}: expected a {HASH_SIZE_BYTES}-byte SHA-256 hash, got {got}")


def _check_leaves(leaf_hashes: Sequence[bytes]) -> None:
    for index, value in enumerate(leaf_hashes):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE_BYTES:
            _check_hash(value, f"leaf hash at index {index}")


def _parent_level(level: list[bytes]) -> list[bytes]:
    """Hash adjacent pairs; an odd last node moves up unchanged (RFC 9162's split rule)."""
    sha = _sha256
    parents = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def _split(size: int) -> int:
    """The largest power of two strictly smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleTree:
    """A complete, immutable tree over known leaf hashes, every level kept for fast proofs.

    Level k holds the hash of leaves [j * 2**k, min((j + 1) * 2**k, n)) at position j, so the
    hash of every subtree a proof needs is one lookup. Costs about two hashes per leaf of memory.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        _check_leaves(leaf_hashes)
        level = list(leaf_hashes)
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = _parent_level(level)
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end), where start is aligned as in RFC 9162's recursion."""
        width = end - start
        height = (width - 1).bit_length()
        if start % (1 << height) == 0 and (width == 1 << height or end == self.size):
            return self._levels[height][start >> height]
        middle = start + _split(width)
        return node_hash(self._subtree(start, middle), self._subtree(middle, end))

    def root_at(self, size: int) -> bytes:
        """The root of the tree made of the first `size` leaves."""
        if not 0 <= size <= self.size:
            raise MerkleError(f"tree size {size} is outside 0..{self.size}")
        return self._subtree(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size]): sibling hashes from the leaf up to the root."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise MerkleError(f"inclusion proof: tree size {size} is outside 0..{self.size}")
        if not 0 <= index < size:
            raise MerkleError(f"inclusion proof: leaf index {index} is outside 0..{size - 1}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            middle = start + _split(end - start)
            if index < middle:
                path.append(self._subtree(middle, end))
                end = middle
            else:
                path.append(self._subtree(start, middle))
                start = middle
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[0:new_size]); empty when old_size is 0 or new_size."""
        new_size = self.size if new_size is None else new_size
        if not 0 <= new_size <= self.size:
            raise MerkleError(f"consistency proof: tree size {new_size} is outside 0..{self.size}")
        if not 0 <= old_size <= new_size:
            raise MerkleError(
                f"consistency proof: old size {old_size} is outside 0..{new_size} (new size)"
            )
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, whole = 0, new_size, True
        # SUBPROOF(m, D[start:end], whole), unrolled; the path is collected top-down.
        while end - start != old_size:
            width = end - start
            split = _split(width)
            if old_size <= split:
                proof.append(self._subtree(start + split, end))
                end = start + split
            else:
                proof.append(self._subtree(start, start + split))
                old_size -= split
                start += split
                whole = False
        if not whole:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash (MTH) over the given leaf hashes."""
    _check_leaves(leaf_hashes)
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof of leaf `index` in the tree of all `leaf_hashes` (O(n); build a
    `MerkleTree` once to answer many proofs)."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Consistency proof from the first `old_size` leaves to all of `leaf_hashes`."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` yields for `leaf_hash` at `index` in a tree of `size` leaves."""
    _check_hash(leaf_hash, "inclusion proof: leaf hash")
    if not 0 <= index < size:
        raise MerkleError(
            f"inclusion proof: leaf index {index} is not inside a tree of size {size}"
        )
    for position, value in enumerate(proof):
        _check_hash(value, f"inclusion proof: hash [{position}]")
    # RFC 9162 2.1.3.2: fn walks the leaf's position, sn the last leaf's, up the tree.
    fn, sn = index, size - 1
    result = leaf_hash
    for value in proof:
        if sn == 0:
            raise MerkleError(
                f"inclusion proof: {len(proof)} hashes is too many for leaf {index} "
                f"in a tree of size {size}"
            )
        if fn & 1 or fn == sn:
            result = node_hash(value, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError(
            f"inclusion proof: {len(proof)} hashes is too few for leaf {index} "
            f"in a tree of size {size}"
        )
    return result


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise MerkleError unless `proof` shows `leaf_hash` at `index` in the tree `root` of
    `size` leaves (RFC 9162 section 2.1.3.2)."""
    _check_hash(root, "inclusion proof: root")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise MerkleError(
            f"inclusion proof for leaf {index} in a tree of size {size} does not lead to the "
            f"expected root (computed {computed.hex()}, expected {root.hex()})"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise MerkleError unless `proof` shows the tree `old_root` of `old_size` leaves is a
    prefix of the tree `new_root` of `new_size` leaves (RFC 9162 section 2.1.4.2)."""
    _check_hash(old_root, "consistency proof: old root")
    _check_hash(new_root, "consistency proof: new root")
    for position, value in enumerate(proof):
        _check_hash(value, f"consistency proof: hash [{position}]")
    if not 0 <= old_size <= new_size:
        raise MerkleError(
            f"consistency proof: old size {old_size} must be between 0 and new size {new_size}"
        )
    if old_size == new_size or old_size == 0:
        if proof:
            raise MerkleError(
                f"consistency proof from size {old_size} to {new_size} must be empty, "
                f"got {len(proof)} hashes"
            )
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise MerkleError("consistency proof: the root of the empty tree is not SHA-256('')")
        if old_size == new_size and old_root != new_root:
            raise MerkleError(
                f"consistency proof: two trees of size {old_size} have different roots "
                f"({old_root.hex()} and {new_root.hex()})"
            )
        return
    if not proof:
        raise MerkleError(
            f"consistency proof from size {old_size} to {new_size} is empty; hashes expected"
        )
    hashes = list(proof)
    if old_size & (old_size - 1) == 0:  # a complete subtree: the old root itself starts the path
        hashes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_result = new_result = hashes[0]
    for value in hashes[1:]:
        if sn == 0:
            raise MerkleError(
                f"consistency proof from size {old_size} to {new_size}: too many hashes "
                f"({len(proof)})"
            )
        if fn & 1 or fn == sn:
            old_result = node_hash(value, old_result)
            new_result = node_hash(value, new_result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_result = node_hash(new_result, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError(
            f"consistency proof from size {old_size} to {new_size}: too few hashes ({len(proof)})"
        )
    if old_result != old_root:
        raise MerkleError(
            f"consistency proof from size {old_size} to {new_size} does not lead to the old root "
            f"(computed {old_result.hex()}, expected {old_root.hex()})"
        )
    if new_result != new_root:
        raise MerkleError(
            f"consistency proof from size {old_size} to {new_size} does not lead to the new root "
            f"(computed {new_result.hex()}, expected {new_root.hex()})"
        )


class CompactTree:
    """An append-only RFC 9162 tree that keeps only the roots of its perfect subtrees.

    With n leaves it holds one hash per set bit of n (at most log2(n) + 1), left to right from
    the largest subtree: appending costs amortized one node hash, the root at most log2(n).
    `size` and `nodes` are enough to persist and resume it (`from_nodes`).
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._size = 0
        self._nodes: list[bytes] = []
        for value in leaf_hashes:
            self.append(value)

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> CompactTree:
        return cls(leaf_hashes)

    @classmethod
    def from_nodes(cls, size: int, nodes: Sequence[bytes]) -> CompactTree:
        """Resume a tree from its `size` and its perfect-subtree roots (`nodes`)."""
        if size < 0 or len(nodes) != size.bit_count():
            raise MerkleError(
                f"compact tree of size {size} needs {max(size, 0).bit_count()} subtree hashes, "
                f"got {len(nodes)}"
            )
        for position, value in enumerate(nodes):
            _check_hash(value, f"compact tree: subtree hash [{position}]")
        tree = cls()
        tree._size = size
        tree._nodes = list(nodes)
        return tree

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> list[bytes]:
        """Roots of the perfect subtrees, largest (leftmost) first."""
        return list(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE_BYTES:
            _check_hash(leaf_hash, f"compact tree: leaf hash at index {self._size}")
        nodes = self._nodes
        value = leaf_hash
        size = self._size
        # Each trailing one bit of the old size is a same-height subtree to merge with.
        while size & 1:
            value = _sha256(b"\x01" + nodes.pop() + value).digest()
            size >>= 1
        nodes.append(value)
        self._size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        nodes = self._nodes
        result = nodes[-1]
        for value in reversed(nodes[:-1]):
            result = node_hash(value, result)
        return result

    def __len__(self) -> int:
        return self._size
