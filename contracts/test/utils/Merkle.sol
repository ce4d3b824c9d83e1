// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice RFC 9162 tree hashing written straight from the RFC's recursive definitions (MTH and
///         PATH), to check the hub's iterative verifier against an independent construction.
library Merkle {
    function leaf(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    function node(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), l, r));
    }

    /// @dev Largest power of two strictly smaller than n (n > 1).
    function split(uint256 n) internal pure returns (uint256 k) {
        k = 1;
        while (k << 1 < n) k <<= 1;
    }

    /// @notice MTH(D[lo:hi]) over leaf hashes.
    function root(bytes32[] memory leaves, uint256 lo, uint256 hi) internal pure returns (bytes32) {
        uint256 n = hi - lo;
        if (n == 1) return leaves[lo];
        uint256 k = split(n);
        return node(root(leaves, lo, lo + k), root(leaves, lo + k, hi));
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        return root(leaves, 0, leaves.length);
    }

    /// @notice PATH(m, D[lo:hi]): the inclusion proof of leaf m (relative to lo).
    function path(bytes32[] memory leaves, uint256 m, uint256 lo, uint256 hi) internal pure returns (bytes32[] memory) {
        uint256 n = hi - lo;
        if (n == 1) return new bytes32[](0);
        uint256 k = split(n);
        bytes32[] memory sub;
        bytes32 sibling;
        if (m < k) {
            sub = path(leaves, m, lo, lo + k);
            sibling = root(leaves, lo + k, hi);
        } else {
            sub = path(leaves, m - k, lo + k, hi);
            sibling = root(leaves, lo, lo + k);
        }
        bytes32[] memory out = new bytes32[](sub.length + 1);
        for (uint256 i = 0; i < sub.length; ++i) {
            out[i] = sub[i];
        }
        out[sub.length] = sibling;
        return out;
    }

    function path(bytes32[] memory leaves, uint256 m) internal pure returns (bytes32[] memory) {
        return path(leaves, m, 0, leaves.length);
    }

    /// @notice SUBPROOF(m, D[lo:hi], b) of RFC 9162 section 2.1.4.1.
    function subproof(bytes32[] memory leaves, uint256 m, uint256 lo, uint256 hi, bool complete)
        internal
        pure
        returns (bytes32[] memory)
    {
        uint256 n = hi - lo;
        if (m == n) {
            if (complete) return new bytes32[](0);
            bytes32[] memory single = new bytes32[](1);
            single[0] = root(leaves, lo, hi);
            return single;
        }
        uint256 k = split(n);
        bytes32[] memory sub;
        bytes32 other;
        if (m <= k) {
            sub = subproof(leaves, m, lo, lo + k, complete);
            other = root(leaves, lo + k, hi);
        } else {
            sub = subproof(leaves, m - k, lo + k, hi, false);
            other = root(leaves, lo, lo + k);
        }
        bytes32[] memory out = new bytes32[](sub.length + 1);
        for (uint256 i = 0; i < sub.length; ++i) {
            out[i] = sub[i];
        }
        out[sub.length] = other;
        return out;
    }

    /// @notice PROOF(m, D[0:n]): consistency proof from the first m leaves to all n.
    function consistency(bytes32[] memory leaves, uint256 m, uint256 n) internal pure returns (bytes32[] memory) {
        return subproof(leaves, m, 0, n, true);
    }
}
