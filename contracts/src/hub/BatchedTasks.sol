// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TaskLifecycle} from "./TaskLifecycle.sol";
import {PocoTypes} from "./IPocoHub.sol";

/// @title BatchedTasks
/// @notice The batched path for workflows with thousands of jobs. One deal's tasks are finalized
///         in consecutive batches; each batch carries one enclave signature over the RFC 9162
///         root of its (task id, result digest) leaves, so every task's result stays provable.
///
///         It keeps the per-task guarantees: the batch id `keccak256(dealid, first, count)`
///         takes the task id's place in PoCo's two messages, so only a worker the scheduler (or
///         TEE broker) authorized for that batch and enclave challenge, holding a result signed
///         by that enclave, can finalize it; batches must start where the previous one ended,
///         so no task is paid twice; and a deal is either per-task or batched, never both: its
///         request and workerpool orders carry `TAG_BATCHED` or not, so the mode is fixed when
///         the deal is matched (PoCo's own per-task calls revert on a batched deal, and the
///         batched calls on a per-task one).
///         `BatchProofs` checks one task's result against its batch's root.
abstract contract BatchedTasks is TaskLifecycle {
    /// @notice PoCo's task id of task `idx` of a deal.
    function taskIdOf(bytes32 dealid, uint256 idx) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(dealid, idx));
    }

    /// @notice Id of the batch of tasks [first, first + count) of a deal.
    function batchIdOf(bytes32 dealid, uint256 first, uint256 count) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(dealid, first, count));
    }

    /// @notice Contribute and finalize the next `count` tasks of a batched deal at once.
    /// @param dealid the deal; TEE, no callback, not used on the per-task path.
    /// @param first index of the first task; must equal the end of the previous batch.
    /// @param count number of tasks in the batch.
    /// @param resultsRoot RFC 9162 root over `batchLeafHash(taskid, digest)` in index order.
    /// @param results where the batch's results are, emitted for readers.
    /// @param enclaveSign EIP-191 signature by `enclaveChallenge` over
    ///        keccak256(keccak256(batchid, resultsRoot), keccak256(worker, batchid, resultsRoot)).
    /// @param authorizationSign EIP-191 signature by the scheduler (or TEE broker) over
    ///        keccak256(worker, batchid, enclaveChallenge).
    function contributeAndFinalizeBatch(
        bytes32 dealid,
        uint256 first,
        uint256 count,
        bytes32 resultsRoot,
        bytes calldata results,
        address enclaveChallenge,
        bytes calldata enclaveSign,
        bytes calldata authorizationSign
    ) external returns (bytes32 batchid) {
        DealRecord storage deal = _deals[dealid];
        _checkNextBatch(deal, dealid, first, count);
        batchid = batchIdOf(dealid, first, count);
        _checkEnclave(deal.workerpoolOwner, batchid, resultsRoot, enclaveChallenge, enclaveSign, authorizationSign);

        deal.batchedCount += uint64(count);
        _batches[dealid].push(PocoTypes.Batch(uint64(first), uint64(count), msg.sender, resultsRoot));
        _payTasks(deal, batchid, msg.sender, count);

        emit BatchFinalize(dealid, batchid, first, count, resultsRoot, msg.sender, results);
    }

    /// @dev Reverts unless [first, first + count) is the next unfinished range of a batchable
    ///      deal, before its contribution deadline.
    function _checkNextBatch(DealRecord storage deal, bytes32 dealid, uint256 first, uint256 count) private view {
        uint256 botSize = deal.botSize;
        if (botSize == 0) revert UnknownDeal(dealid);
        if (deal.tag & TAG_BATCHED == 0) revert DealIsPerTask(dealid);
        if (count == 0) revert EmptyBatch();
        uint256 botFirst = deal.botFirst;
        uint256 done = deal.batchedCount;
        if (first != botFirst + done) revert BatchOutOfOrder(botFirst + done, first);
        if (count > botSize - done) revert BatchOutOfDeal(first + count, botFirst + botSize);
        uint256 deadline = uint256(deal.startTime) + uint256(deal.timeref) * CONTRIBUTION_DEADLINE_RATIO;
        if (block.timestamp >= deadline) revert ContributionDeadlinePassed(deadline);
    }

    /// @notice After the final deadline, fail every task of a batched deal that no
    ///         batch finalized: refund the requester and send the scheduler's stake to the kitty.
    function claimBatch(bytes32 dealid) external {
        DealRecord storage deal = _deals[dealid];
        uint256 botSize = deal.botSize;
        if (botSize == 0) revert UnknownDeal(dealid);
        if (deal.tag & TAG_BATCHED == 0) revert DealIsPerTask(dealid);
        uint256 finalDeadline = uint256(deal.startTime) + uint256(deal.timeref) * FINAL_DEADLINE_RATIO;
        if (block.timestamp < finalDeadline) revert FinalDeadlineNotReached(finalDeadline);
        uint256 done = deal.batchedCount;
        if (done == botSize) revert NothingToClaim(dealid);
        uint256 count = botSize - done;
        uint256 first = uint256(deal.botFirst) + done;

        deal.batchedCount = uint64(botSize);
        _failTasks(deal, batchIdOf(dealid, first, count), count);
        emit BatchClaimed(dealid, first, count);
    }

    /// @notice Number of batches finalized for a deal.
    function countBatches(bytes32 dealid) external view returns (uint256) {
        return _batches[dealid].length;
    }

    /// @notice Batch number `i` of a deal.
    function viewBatch(bytes32 dealid, uint256 i) external view returns (PocoTypes.Batch memory) {
        return _batches[dealid][i];
    }
}
