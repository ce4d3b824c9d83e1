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
}
