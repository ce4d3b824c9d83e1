// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Signatures
/// @notice secp256k1 signature checks used by the hub: EIP-712 digests and EIP-191
///         ("\x19Ethereum Signed Message:\n32") messages, as PoCo signs them. Rejects malleable
///         (high-s) signatures and anything that is not 65 bytes.
library Signatures {
    /// @dev secp256k1 group order / 2: signatures with a larger s are the malleable twin.
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice Address that produced `signature` over `digest`, or zero when malformed.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        if (v < 27) v += 27;
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    /// @notice True when `signer` (non-zero) signed `digest`.
    function isValid(address signer, bytes32 digest, bytes calldata signature) internal pure returns (bool) {
        return signer != address(0) && recover(digest, signature) == signer;
    }

    /// @notice EIP-191 version 0x45 digest of a 32-byte message, as `eth_sign` produces it.
    function toEthSignedMessageHash(bytes32 message) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", message));
    }

    /// @notice EIP-712 digest of a struct hash under a domain separator.
    function toTypedDataHash(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }
}
