// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {RFC9162} from "./libs/RFC9162.sol";

/// @title WorkflowRunRegistry
/// @notice Anchors the checkpoints of PoX run logs (C2SP tlog-checkpoint: origin, tree size,
///         RFC 9162 root) with the run bundle's URI and, optionally, the PoCo task ids of the
///         run's jobs. A run belongs to whoever anchored it first; later checkpoints of a growing
///         run must come from the same account, keep the origin and have a larger tree size.
///         Every anchored root stays available to check RFC 9162 inclusion proofs, and the
///         consistency of any two anchored checkpoints of a run (the log only grew), on chain.
contract WorkflowRunRegistry {
    struct Run {
        address submitter;
        uint64 treeSize;
        uint32 anchors;
        bytes32 originHash;
    }

    /// @notice A checkpoint of run `runId` was anchored.
    event RunAnchored(
        bytes32 indexed runId,
        address indexed submitter,
        uint64 treeSize,
        bytes32 root,
        string origin,
        string bundleUri,
        bytes32[] taskIds
    );

    error NotRunSubmitter(bytes32 runId, address submitter, address caller);
    error TreeSizeNotGrowing(bytes32 runId, uint64 anchored, uint64 proposed);
    error OriginChanged(bytes32 runId);
    error EmptyRoot();
    error UnknownCheckpoint(bytes32 runId, uint64 treeSize);

    mapping(bytes32 runId => Run) private _runs;
    mapping(bytes32 runId => mapping(uint64 treeSize => bytes32 root)) private _roots;

    /// @notice Anchor a checkpoint of a run's log.
    /// @param runId the run's id.
    /// @param origin the checkpoint's origin line, e.g. "pox/run/<run-id>".
    /// @param treeSize number of entries in the log; larger than any earlier anchor of the run.
    /// @param root RFC 9162 root of the log at that size.
    /// @param bundleUri where the run bundle can be fetched.
    /// @param taskIds PoCo task ids of the run's jobs, emitted only (may be empty).
    function anchorRun(
        bytes32 runId,
        string calldata origin,
        uint64 treeSize,
        bytes32 root,
        string calldata bundleUri,
        bytes32[] calldata taskIds
    ) external {
        if (root == bytes32(0)) revert EmptyRoot();
        Run storage run = _runs[runId];
        bytes32 originHash = keccak256(bytes(origin));
        if (run.submitter == address(0)) {
            if (treeSize == 0) revert TreeSizeNotGrowing(runId, 0, 0);
            run.submitter = msg.sender;
            run.originHash = originHash;
        } else {
            if (run.submitter != msg.sender) revert NotRunSubmitter(runId, run.submitter, msg.sender);
            if (treeSize <= run.treeSize) revert TreeSizeNotGrowing(runId, run.treeSize, treeSize);
            if (run.originHash != originHash) revert OriginChanged(runId);
        }
        run.treeSize = treeSize;
        run.anchors += 1;
        _roots[runId][treeSize] = root;
        emit RunAnchored(runId, msg.sender, treeSize, root, origin, bundleUri, taskIds);
    }

    /// @notice The latest anchored checkpoint of a run (zero values when none).
    function viewRun(bytes32 runId)
        external
        view
        returns (address submitter, uint64 treeSize, bytes32 root, uint32 anchors, bytes32 originHash)
    {
        Run storage run = _runs[runId];
        return (run.submitter, run.treeSize, _roots[runId][run.treeSize], run.anchors, run.originHash);
    }

    /// @notice Root anchored for a run at a given tree size (zero when none).
    function rootAt(bytes32 runId, uint64 treeSize) external view returns (bytes32) {
        return _roots[runId][treeSize];
    }

    /// @notice RFC 9162 leaf hash of a log entry (e.g. a DSSE envelope): SHA256(0x00 || entry).
    function leafHash(bytes calldata entry) external pure returns (bytes32) {
        return RFC9162.leafHash(entry);
    }

    /// @notice True when `proof` shows `leaf` at `index` in the anchored checkpoint of size
    ///         `treeSize`; reverts when no such checkpoint was anchored.
    function verifyInclusion(bytes32 runId, uint64 treeSize, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = _roots[runId][treeSize];
        if (root == bytes32(0)) revert UnknownCheckpoint(runId, treeSize);
        return RFC9162.verifyInclusion(leaf, index, treeSize, proof, root);
    }

    /// @notice True when `proof` (RFC 9162 consistency proof) shows that the run's anchored
    ///         checkpoint of `oldSize` is a prefix of its anchored checkpoint of `newSize`, i.e.
    ///         the log only grew between them; reverts when either was not anchored.
    function verifyConsistency(bytes32 runId, uint64 oldSize, uint64 newSize, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 oldRoot = _roots[runId][oldSize];
        if (oldRoot == bytes32(0)) revert UnknownCheckpoint(runId, oldSize);
        bytes32 newRoot = _roots[runId][newSize];
        if (newRoot == bytes32(0)) revert UnknownCheckpoint(runId, newSize);
        return RFC9162.verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof);
    }
}
