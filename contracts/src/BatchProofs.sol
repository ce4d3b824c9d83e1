// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PocoTypes} from "./hub/IPocoHub.sol";
import {RFC9162} from "./libs/RFC9162.sol";

/// @notice The part of the hub BatchProofs reads.
interface IBatchSource {
    function countBatches(bytes32 dealid) external view returns (uint256);
    function viewBatch(bytes32 dealid, uint256 i) external view returns (PocoTypes.Batch memory);
}

/// @title BatchProofs
/// @notice Read-only companion of the hub for the batched path: finds the batch that finalized a
///         task and checks a task's result against that batch's RFC 9162 root. Kept out of the
///         hub so the hub stays under the EIP-170 code size limit; it holds no state.
contract BatchProofs {
    error UnknownBatch(bytes32 dealid, uint256 idx);

    IBatchSource public immutable hub;

    constructor(IBatchSource hub_) {
        hub = hub_;
    }

    /// @notice PoCo's task id of task `idx` of a deal.
    function taskIdOf(bytes32 dealid, uint256 idx) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(dealid, idx));
    }

    /// @notice RFC 9162 leaf hash of one task's result in a batch: SHA256(0x00 || taskid || digest).
    function batchLeafHash(bytes32 taskid, bytes32 resultDigest) public pure returns (bytes32) {
        return RFC9162.leafHash(abi.encodePacked(taskid, resultDigest));
    }

    /// @notice The batch that finalized task `idx` of a deal (binary search; batches are
    ///         consecutive and ordered).
    function findBatch(bytes32 dealid, uint256 idx) public view returns (uint256 i, PocoTypes.Batch memory batch) {
        uint256 lo = 0;
        uint256 hi = hub.countBatches(dealid);
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            batch = hub.viewBatch(dealid, mid);
            if (idx < batch.first) {
                hi = mid;
            } else if (idx >= uint256(batch.first) + batch.count) {
                lo = mid + 1;
            } else {
                return (mid, batch);
            }
        }
        revert UnknownBatch(dealid, idx);
    }

    /// @notice True when `proof` shows that task `idx` of a batched deal delivered `resultDigest`.
    function verifyBatchedResult(bytes32 dealid, uint256 idx, bytes32 resultDigest, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        (, PocoTypes.Batch memory batch) = findBatch(dealid, idx);
        bytes32 leaf = batchLeafHash(taskIdOf(dealid, idx), resultDigest);
        return RFC9162.verifyInclusion(leaf, idx - batch.first, batch.count, proof, batch.resultsRoot);
    }
}
