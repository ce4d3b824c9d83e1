// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title RFC9162
/// @notice Merkle tree hashing of RFC 9162 (Certificate Transparency v2), section 2.1, with the
///         SHA-256 precompile: leaf = SHA256(0x00 || data), node = SHA256(0x01 || left || right),
///         and verification of inclusion proofs (section 2.1.3.2) and consistency proofs
///         (section 2.1.4.2).
library RFC9162 {
    /// @notice Hash of one log entry.
    function leafHash(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    /// @notice Hash of an interior node.
    function nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// @notice Root a valid inclusion proof leads to, or zero when the proof cannot be valid for
    ///         (`index`, `treeSize`), e.g. it has the wrong length.
    function rootFromInclusionProof(bytes32 leaf, uint256 index, uint256 treeSize, bytes32[] calldata proof)
        internal
        pure
        returns (bytes32)
    {
        if (index >= treeSize) return bytes32(0);
        uint256 fn = index;
        uint256 sn = treeSize - 1;
        bytes32 r = leaf;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return bytes32(0);
            if (fn & 1 == 1 || fn == sn) {
                r = nodeHash(proof[i], r);
                if (fn & 1 == 0) {
                    while (fn & 1 == 0 && fn != 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = nodeHash(r, proof[i]);
            }
            fn >>= 1;
            sn >>= 1;
        }
        if (sn != 0) return bytes32(0);
        return r;
    }

    /// @notice True when `proof` shows `leaf` at `index` in the tree of `treeSize` with `root`.
    function verifyInclusion(bytes32 leaf, uint256 index, uint256 treeSize, bytes32[] calldata proof, bytes32 root)
        internal
        pure
        returns (bool)
    {
        return root != bytes32(0) && rootFromInclusionProof(leaf, index, treeSize, proof) == root;
    }

    /// @notice True when `proof` shows that the tree of `oldSize` with `oldRoot` is a prefix of
    ///         the tree of `newSize` with `newRoot` (RFC 9162 section 2.1.4.2).
    function verifyConsistency(
        uint256 oldSize,
        uint256 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) internal pure returns (bool) {
        if (oldSize == 0 || oldSize > newSize) return false;
        if (oldSize == newSize) return proof.length == 0 && oldRoot == newRoot;
        if (proof.length == 0) return false;
        // When oldSize is a power of two, its root is the proof's implicit first element.
        bool implicitFirst = oldSize & (oldSize - 1) == 0;
        uint256 fn = oldSize - 1;
        uint256 sn = newSize - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        bytes32 fr = implicitFirst ? oldRoot : proof[0];
        bytes32 sr = fr;
        for (uint256 i = implicitFirst ? 0 : 1; i < proof.length; ++i) {
            if (sn == 0) return false;
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = nodeHash(c, fr);
                sr = nodeHash(c, sr);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = nodeHash(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == oldRoot && sr == newRoot;
    }
}
