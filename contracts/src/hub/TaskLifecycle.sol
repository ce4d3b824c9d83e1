// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {DealMatching} from "./DealMatching.sol";
import {PocoTypes} from "./IPocoHub.sol";
import {Signatures} from "../libs/Signatures.sol";

/// @notice EIP-1154 oracle consumer, called with a task's callback data once it completes.
interface IOracleConsumer {
    function receiveResult(bytes32 id, bytes calldata result) external;
}

/// @title TaskLifecycle
/// @notice The per-task path of PoCo's TEE workflow: `initialize` (task id
///         `keccak256(dealid, idx)`, deadlines from the deal's start), `contributeAndFinalize`
///         (scheduler or TEE broker authorization over (worker, taskid, enclaveChallenge), the
///         enclave challenge's signature over (resultHash, resultSeal), payments) and `claim`
///         after the final deadline (refund the requester, seize the scheduler's stake).
abstract contract TaskLifecycle is DealMatching {
    /// @notice Open task `idx` of a per-task deal. Anyone may call it; a task opens once.
    ///         Reverts with `DealIsBatched` on a batched deal (its mode was fixed at match).
    /// @return taskid PoCo's task id.
    function initialize(bytes32 dealid, uint256 idx) public returns (bytes32 taskid) {
        DealRecord storage deal = _deals[dealid];
        if (deal.botSize == 0) revert UnknownDeal(dealid);
        if (idx < deal.botFirst || idx >= uint256(deal.botFirst) + deal.botSize) {
            revert TaskIndexOutOfDeal(dealid, idx);
        }
        if (deal.tag & TAG_BATCHED != 0) revert DealIsBatched(dealid);

        taskid = keccak256(abi.encodePacked(dealid, idx));
        TaskRecord storage task = _tasks[taskid];
        if (task.status != PocoTypes.TaskStatusEnum.UNSET) revert TaskNotActive(taskid);
        uint256 timeref = deal.timeref;
        uint256 start = deal.startTime;
        task.dealid = dealid;
        task.status = PocoTypes.TaskStatusEnum.ACTIVE;
        task.idx = uint64(idx);
        task.timeref = uint40(timeref);
        task.contributionDeadline = uint40(start + timeref * CONTRIBUTION_DEADLINE_RATIO);
        task.finalDeadline = uint40(start + timeref * FINAL_DEADLINE_RATIO);
        emit TaskInitialize(taskid, deal.workerpoolPointer);
    }

    /// @notice Contribute and finalize a TEE task in one call (PoCo's fast path for trust 1).
    /// @param taskid the task, initialized and active, before its contribution deadline.
    /// @param resultDigest digest of the result the enclave produced.
    /// @param results where the results are (e.g. an IPFS multiaddr), stored for readers.
    /// @param resultsCallback data for the deal's callback contract; its keccak256 must equal
    ///        `resultDigest` when a callback is set, and it must be empty otherwise.
    /// @param enclaveChallenge address of the per-task enclave key the SMS released.
    /// @param enclaveSign EIP-191 signature by `enclaveChallenge` over
    ///        keccak256(resultHash, resultSeal).
    /// @param authorizationSign EIP-191 signature by the scheduler (or the TEE broker) over
    ///        keccak256(worker, taskid, enclaveChallenge).
    function contributeAndFinalize(
        bytes32 taskid,
        bytes32 resultDigest,
        bytes calldata results,
        bytes calldata resultsCallback,
        address enclaveChallenge,
        bytes calldata enclaveSign,
        bytes calldata authorizationSign
    ) external {
        TaskRecord storage task = _tasks[taskid];
        if (task.status != PocoTypes.TaskStatusEnum.ACTIVE) revert TaskNotActive(taskid);
        if (block.timestamp >= task.contributionDeadline) revert ContributionDeadlinePassed(task.contributionDeadline);
        DealRecord storage deal = _deals[task.dealid];
        _checkResultsCallback(deal.callback, resultsCallback, resultDigest);
        bytes32 resultHash =
            _checkEnclave(deal.workerpoolOwner, taskid, resultDigest, enclaveChallenge, enclaveSign, authorizationSign);

        task.status = PocoTypes.TaskStatusEnum.COMPLETED;
        task.resultsTimestamp = uint40(block.timestamp);
        task.worker = msg.sender;
        task.resultDigest = resultDigest;
        if (results.length != 0) task.results = results;
        if (resultsCallback.length != 0) task.resultsCallback = resultsCallback;

        _payTasks(deal, taskid, msg.sender, 1);

        emit TaskContribute(taskid, msg.sender, resultHash);
        emit TaskConsensus(taskid, resultHash);
        emit TaskReveal(taskid, msg.sender, resultDigest);
        emit TaskFinalize(taskid, results);

        if (deal.callback != address(0)) _callback(deal.callback, taskid, resultsCallback);
    }

    /// @notice After the final deadline, fail an unfinished task: the requester gets the task
    ///         price back and the scheduler's stake for it goes to the kitty.
    function claim(bytes32 taskid) public {
        TaskRecord storage task = _tasks[taskid];
        PocoTypes.TaskStatusEnum status = task.status;
        if (status != PocoTypes.TaskStatusEnum.ACTIVE && status != PocoTypes.TaskStatusEnum.REVEALING) {
            revert TaskNotActive(taskid);
        }
        if (block.timestamp < task.finalDeadline) revert FinalDeadlineNotReached(task.finalDeadline);
        task.status = PocoTypes.TaskStatusEnum.FAILED;
        _failTasks(_deals[task.dealid], taskid, 1);
        emit TaskClaimed(taskid);
    }

    /// @dev PoCo's callback rule: no callback and no data, or data whose keccak256 is the digest.
    function _checkResultsCallback(address callback, bytes calldata resultsCallback, bytes32 resultDigest)
        private
        pure
    {
        if (callback == address(0) && resultsCallback.length == 0) return;
        if (keccak256(resultsCallback) != resultDigest) revert InvalidResultsCallback();
    }

    /// @dev PoCo's TEE checks for the caller as worker. `subject` is a task id (or, on the
    ///      batched path, a batch id) and `resultDigest` its result digest (or results root).
    /// @return resultHash keccak256(subject, resultDigest), the contribution's result hash.
    function _checkEnclave(
        address scheduler,
        bytes32 subject,
        bytes32 resultDigest,
        address enclaveChallenge,
        bytes calldata enclaveSign,
        bytes calldata authorizationSign
    ) internal view returns (bytes32 resultHash) {
        if (enclaveChallenge == address(0)) revert EnclaveChallengeRequired();
        address broker = teebroker;
        address authorizer = broker != address(0) ? broker : scheduler;
        bytes32 authorization =
            Signatures.toEthSignedMessageHash(keccak256(abi.encodePacked(msg.sender, subject, enclaveChallenge)));
        if (!Signatures.isValid(authorizer, authorization, authorizationSign)) revert InvalidAuthorization(authorizer);
        resultHash = keccak256(abi.encodePacked(subject, resultDigest));
        bytes32 resultSeal = keccak256(abi.encodePacked(msg.sender, subject, resultDigest));
        bytes32 enclaveMessage = Signatures.toEthSignedMessageHash(keccak256(abi.encodePacked(resultHash, resultSeal)));
        if (!Signatures.isValid(enclaveChallenge, enclaveMessage, enclaveSign)) {
            revert InvalidEnclaveSignature(enclaveChallenge);
        }
    }

    /// @dev Payments for `count` completed tasks of a deal, each exactly as PoCo pays one:
    ///      requester pays the task price, app and dataset owners get their prices, the worker
    ///      and the scheduler split the workerpool price, the scheduler's stake unlocks.
    function _payTasks(DealRecord storage deal, bytes32 ref, address worker, uint256 count) internal {
        uint256 appPrice = deal.appPrice;
        uint256 datasetPrice = deal.datasetPrice;
        uint256 workerpoolPrice = deal.workerpoolPrice;
        address scheduler = deal.workerpoolOwner;
        uint256 workerReward = workerpoolPrice * (100 - deal.schedulerRewardRatio) / 100;
        uint256 schedulerReward = workerpoolPrice - workerReward;

        _seize(deal.requester, (appPrice + datasetPrice + workerpoolPrice) * count, ref);
        _reward(deal.appOwner, appPrice * count, ref);
        if (deal.datasetPointer != address(0)) _reward(deal.datasetOwner, datasetPrice * count, ref);
        _reward(worker, workerReward * count, ref);
        _reward(scheduler, schedulerReward * count, ref);
        _unlock(scheduler, (workerpoolPrice * WORKERPOOL_STAKE_RATIO / 100) * count);

        uint256 kitty = _accounts[KITTY_ADDRESS].frozen;
        if (kitty > 0) {
            uint256 share = kitty * KITTY_RATIO / 100;
            if (share < KITTY_MIN) share = KITTY_MIN;
            if (share > kitty) share = kitty;
            _seize(KITTY_ADDRESS, share, ref);
            _reward(scheduler, share, ref);
        }
    }

    /// @dev Refunds for `count` failed tasks: the requester's payment unlocks, the scheduler's
    ///      stake moves to the kitty.
    function _failTasks(DealRecord storage deal, bytes32 ref, uint256 count) internal {
        uint256 workerpoolPrice = deal.workerpoolPrice;
        _unlock(deal.requester, (uint256(deal.appPrice) + deal.datasetPrice + workerpoolPrice) * count);
        uint256 stake = (workerpoolPrice * WORKERPOOL_STAKE_RATIO / 100) * count;
        if (stake == 0) return;
        _seize(deal.workerpoolOwner, stake, ref);
        _accounts[KITTY_ADDRESS].frozen += uint128(stake);
        emit Reward(KITTY_ADDRESS, stake, ref);
        emit Lock(KITTY_ADDRESS, stake);
    }

    /// @dev EIP-1154 callback with bounded gas; its failure does not undo the finalization.
    function _callback(address target, bytes32 taskid, bytes calldata data) private {
        // 63/64 rule: make sure the callee can really get CALLBACK_GAS.
        if (gasleft() < CALLBACK_GAS * 64 / 63 + 5_000) revert InsufficientGasForCallback();
        (bool ok,) = target.call{gas: CALLBACK_GAS}(abi.encodeCall(IOracleConsumer.receiveResult, (taskid, data)));
        ok; // a failing consumer must not block payment
    }
}
