// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {RFC9162} from "./libs/RFC9162.sol";

/// @title WorkflowRunRegistry
/// @notice Anchors the checkpoints of PoX run logs (C2SP tlog-checkpoint: origin, tree size,
///         RFC 9162 root) with the run bundle's URI and, optionally, the PoCo task ids of the
///         run's jobs.
///
///         A run is named by its submitter and its run id together: the key is
///         `keccak256(abi.encode(submitter, runId))`, and every read takes both. A run id is
///         public as soon as its first anchor is in a mempool, so a registry keyed by run id
///         alone would let anyone anchor it first (squatting) or anchor a huge tree size ahead of
///         the real checkpoints; keyed by submitter, a stranger can only write under their own
///         address, which readers who know the run's requester never look at.
///
///         Later checkpoints of a growing run keep the origin and have a larger tree size. Every
///         anchored root stays available to check RFC 9162 inclusion proofs, and the consistency
///         of any two anchored checkpoints of a run (the log only grew), on chain.
contract WorkflowRunRegistry {
    /// @dev The latest anchored checkpoint of one (submitter, run id).
    struct Run {
        uint64 treeSize;
        uint32 anchors;
        bytes32 originHash;
    }

    /// @notice `submitter` anchored a checkpoint of its run `runId` (stored under `runKey`).
    event RunAnchored(
        bytes32 indexed runId,
        address indexed submitter,
        bytes32 indexed runKey,
        uint64 treeSize,
        bytes32 root,
        string origin,
        string bundleUri,
        bytes32[] taskIds
    );

    /// @notice The tree size is not larger than the submitter's latest anchor of the run.
    error TreeSizeNotGrowing(address submitter, bytes32 runId, uint64 anchored, uint64 proposed);
    /// @notice A later checkpoint names another origin than the run's first one.
    error OriginChanged(address submitter, bytes32 runId);
    /// @notice The root is zero (no log has that root; zero means "none" in the views).
    error EmptyRoot();
    /// @notice The submitter anchored no checkpoint of that size for the run.
    error UnknownCheckpoint(address submitter, bytes32 runId, uint64 treeSize);

    mapping(bytes32 runKey => Run) private _runs;
    mapping(bytes32 runKey => mapping(uint64 treeSize => bytes32 root)) private _roots;

    /// @notice The storage key of `submitter`'s run `runId`: keccak256(abi.encode(submitter, runId)).
    function runKey(address submitter, bytes32 runId) public pure returns (bytes32) {
        return keccak256(abi.encode(submitter, runId));
    }

    /// @notice Anchor a checkpoint of the caller's run `runId`.
    /// @param runId the run's id (PoX: SHA-256 of the run id string).
    /// @param origin the checkpoint's origin line, e.g. "pox/run/<run-id>"; fixed by the first anchor.
    /// @param treeSize number of entries in the log; larger than the caller's earlier anchors of the run.
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
        bytes32 key = _record(runId, keccak256(bytes(origin)), treeSize, root);
        emit RunAnchored(runId, msg.sender, key, treeSize, root, origin, bundleUri, taskIds);
    }

    /// @dev Stores the caller's checkpoint of `runId` after the growth and origin checks.
    function _record(bytes32 runId, bytes32 originHash, uint64 treeSize, bytes32 root) private returns (bytes32 key) {
        if (root == bytes32(0)) revert EmptyRoot();
        key = runKey(msg.sender, runId);
        Run storage run = _runs[key];
        if (treeSize <= run.treeSize) revert TreeSizeNotGrowing(msg.sender, runId, run.treeSize, treeSize);
        if (run.anchors == 0) {
            run.originHash = originHash;
        } else if (run.originHash != originHash) {
            revert OriginChanged(msg.sender, runId);
        }
        run.treeSize = treeSize;
        run.anchors += 1;
        _roots[key][treeSize] = root;
    }

    /// @notice The latest checkpoint `submitter` anchored of run `runId` (zero values when none).
    function viewRun(address submitter, bytes32 runId)
        external
        view
        returns (uint64 treeSize, bytes32 root, uint32 anchors, bytes32 originHash)
    {
        bytes32 key = runKey(submitter, runId);
        Run storage run = _runs[key];
        return (run.treeSize, _roots[key][run.treeSize], run.anchors, run.originHash);
    }

    /// @notice Root `submitter` anchored for run `runId` at a given tree size (zero when none).
    function rootAt(address submitter, bytes32 runId, uint64 treeSize) external view returns (bytes32) {
        return _roots[runKey(submitter, runId)][treeSize];
    }

    /// @notice RFC 9162 leaf hash of a log entry (e.g. a DSSE envelope): SHA256(0x00 || entry).
    function leafHash(bytes calldata entry) external pure returns (bytes32) {
        return RFC9162.leafHash(entry);
    }

    /// @notice True when `proof` shows `leaf` at `index` in the checkpoint of size `treeSize`
    ///         that `submitter` anchored for run `runId`; reverts when no such checkpoint exists.
    function verifyInclusion(
        address submitter,
        bytes32 runId,
        uint64 treeSize,
        uint256 index,
        bytes32 leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 root = _roots[runKey(submitter, runId)][treeSize];
        if (root == bytes32(0)) revert UnknownCheckpoint(submitter, runId, treeSize);
        return RFC9162.verifyInclusion(leaf, index, treeSize, proof, root);
    }

    /// @notice True when `proof` (RFC 9162 consistency proof) shows that the checkpoint of
    ///         `oldSize` that `submitter` anchored for run `runId` is a prefix of its checkpoint
    ///         of `newSize`, i.e. the log only grew between them; reverts when either is missing.
    function verifyConsistency(
        address submitter,
        bytes32 runId,
        uint64 oldSize,
        uint64 newSize,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 key = runKey(submitter, runId);
        bytes32 oldRoot = _roots[key][oldSize];
        if (oldRoot == bytes32(0)) revert UnknownCheckpoint(submitter, runId, oldSize);
        bytes32 newRoot = _roots[key][newSize];
        if (newRoot == bytes32(0)) revert UnknownCheckpoint(submitter, runId, newSize);
        return RFC9162.verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof);
    }
}
