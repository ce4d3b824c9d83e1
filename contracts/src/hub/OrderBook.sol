// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Escrow} from "./Escrow.sol";
import {PocoOrders} from "../libs/PocoOrders.sol";
import {Signatures} from "../libs/Signatures.sol";

/// @title OrderBook
/// @notice PoCo's EIP-712 domain ("iExecODB", "5.0.0"), order presigning and closing
///         (`manage*Order`), and the signature-or-presignature check matching relies on.
abstract contract OrderBook is Escrow {
    using PocoOrders for PocoOrders.AppOrder;
    using PocoOrders for PocoOrders.DatasetOrder;
    using PocoOrders for PocoOrders.WorkerpoolOrder;
    using PocoOrders for PocoOrders.RequestOrder;
    using PocoOrders for PocoOrders.AppOrderOperation;
    using PocoOrders for PocoOrders.DatasetOrderOperation;
    using PocoOrders for PocoOrders.WorkerpoolOrderOperation;
    using PocoOrders for PocoOrders.RequestOrderOperation;

    /// @notice The EIP-712 domain separator orders are signed under.
    function eip712domain_separator() external view returns (bytes32) {
        return _domainSeparator;
    }

    /// @notice Volume consumed of an order, by its EIP-712 hash.
    function viewConsumed(bytes32 orderHash) external view returns (uint256) {
        return _consumed[orderHash];
    }

    /// @notice Who presigned an order, by its EIP-712 hash (zero when none).
    function viewPresigned(bytes32 orderHash) external view returns (address) {
        return _presigned[orderHash];
    }

    /// @notice Presign (SIGN) or close (CLOSE) an app order. Sent by the app owner, or carrying
    ///         the owner's EIP-712 signature over the operation.
    function manageAppOrder(PocoOrders.AppOrderOperation calldata op) external {
        address entryOwner = appregistry.ownerOfEntry(op.order.app);
        _manage(entryOwner, op.hash(), op.order.hash(), op.order.volume, op.operation, op.sign, 0);
    }

    /// @notice Presign or close a dataset order (dataset owner).
    function manageDatasetOrder(PocoOrders.DatasetOrderOperation calldata op) external {
        address entryOwner = datasetregistry.ownerOfEntry(op.order.dataset);
        _manage(entryOwner, op.hash(), op.order.hash(), op.order.volume, op.operation, op.sign, 1);
    }

    /// @notice Presign or close a workerpool order (workerpool owner, the scheduler).
    function manageWorkerpoolOrder(PocoOrders.WorkerpoolOrderOperation calldata op) external {
        address entryOwner = workerpoolregistry.ownerOfEntry(op.order.workerpool);
        _manage(entryOwner, op.hash(), op.order.hash(), op.order.volume, op.operation, op.sign, 2);
    }

    /// @notice Presign or close a request order (its requester).
    function manageRequestOrder(PocoOrders.RequestOrderOperation calldata op) external {
        _manage(op.order.requester, op.hash(), op.order.hash(), op.order.volume, op.operation, op.sign, 3);
    }

    /// @dev Shared body of the four `manage*Order`; `kind` picks PoCo's event (app, dataset,
    ///      workerpool, request).
    function _manage(
        address entryOwner,
        bytes32 operationHash,
        bytes32 orderStructHash,
        uint256 volume,
        PocoOrders.OrderOperationEnum operation,
        bytes calldata sign,
        uint256 kind
    ) private {
        _checkOperator(entryOwner, operationHash, sign);
        bytes32 h = _typedHash(orderStructHash);
        if (operation == PocoOrders.OrderOperationEnum.SIGN) {
            _presigned[h] = entryOwner;
            if (kind == 0) emit SignedAppOrder(h);
            else if (kind == 1) emit SignedDatasetOrder(h);
            else if (kind == 2) emit SignedWorkerpoolOrder(h);
            else emit SignedRequestOrder(h);
        } else {
            _consumed[h] = volume;
            if (kind == 0) emit ClosedAppOrder(h);
            else if (kind == 1) emit ClosedDatasetOrder(h);
            else if (kind == 2) emit ClosedWorkerpoolOrder(h);
            else emit ClosedRequestOrder(h);
        }
    }

    function _checkOperator(address entryOwner, bytes32 operationHash, bytes calldata sign) private view {
        if (entryOwner == address(0)) revert ZeroAddress();
        if (msg.sender != entryOwner && !Signatures.isValid(entryOwner, _typedHash(operationHash), sign)) {
            revert InvalidSenderOrSignature(entryOwner, msg.sender);
        }
    }

    /// @dev EIP-712 digest of a struct hash under the hub's domain.
    function _typedHash(bytes32 structHash) internal view returns (bytes32) {
        return Signatures.toTypedDataHash(_domainSeparator, structHash);
    }

    /// @dev PoCo's rule: an empty signature means "presigned by `signer`".
    function _isSignedOrPresigned(address signer, bytes32 orderHash, bytes calldata sign) internal view returns (bool) {
        if (sign.length == 0) return signer != address(0) && _presigned[orderHash] == signer;
        return Signatures.isValid(signer, orderHash, sign);
    }
}
