// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AppRegistry} from "./registries/AppRegistry.sol";
import {DatasetRegistry} from "./registries/DatasetRegistry.sol";
import {WorkerpoolRegistry} from "./registries/WorkerpoolRegistry.sol";
import {BatchedTasks} from "./hub/BatchedTasks.sol";
import {HubStorage} from "./hub/HubStorage.sol";
import {PocoTypes} from "./hub/IPocoHub.sol";

/// @title PocoHub
/// @notice PoX's task hub: a PoCo-faithful TEE task protocol (escrow, EIP-712 orders, deals,
///         tasks, TEE contributions, claims) plus a batched path for large workflows. This file
///         holds administration (owner, categories, TEE broker) and the read-only views; each
///         concern lives in its own file under `hub/`.
contract PocoHub is BatchedTasks {
    /// @param apps, datasets, workerpools the registries whose entries deals may use.
    constructor(AppRegistry apps, DatasetRegistry datasets, WorkerpoolRegistry workerpools)
        HubStorage(apps, datasets, workerpools)
    {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Create a work category; its time reference (seconds) sets task deadlines.
    /// @return catid the new category's index.
    function createCategory(string calldata name, string calldata description, uint256 workClockTimeRef)
        external
        onlyOwner
        returns (uint256 catid)
    {
        // Bounded so that deal start + 10 x timeref always fits the packed 40-bit deadlines.
        if (workClockTimeRef == 0 || workClockTimeRef > type(uint32).max) revert AmountTooLarge(workClockTimeRef);
        catid = _categories.length;
        if (catid > type(uint32).max) revert AmountTooLarge(catid);
        _categories.push(PocoTypes.Category(name, description, workClockTimeRef));
        emit CreateCategory(catid, name, description, workClockTimeRef);
    }

    /// @notice Set the TEE broker whose signature authorizes TEE contributions instead of the
    ///         scheduler's (zero: the scheduler signs, as in PoCo without a broker).
    function setTeeBroker(address broker) external onlyOwner {
        emit TeeBrokerChanged(teebroker, broker);
        teebroker = broker;
    }

    /// @notice Hand administration to another account.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        owner = newOwner;
    }

    /// @notice A category, by index.
    function viewCategory(uint256 catid) external view returns (PocoTypes.Category memory) {
        if (catid >= _categories.length) revert UnknownCategory(catid);
        return _categories[catid];
    }

    /// @notice Number of categories.
    function countCategory() external view returns (uint256) {
        return _categories.length;
    }

    /// @notice A deal in PoCo's shape (trust is always 1, the sponsor is the requester).
    function viewDeal(bytes32 dealid) external view returns (PocoTypes.Deal memory deal) {
        DealRecord storage d = _deals[dealid];
        deal.app = PocoTypes.Resource(d.appPointer, d.appOwner, d.appPrice);
        deal.dataset = PocoTypes.Resource(d.datasetPointer, d.datasetOwner, d.datasetPrice);
        deal.workerpool = PocoTypes.Resource(d.workerpoolPointer, d.workerpoolOwner, d.workerpoolPrice);
        deal.trust = d.botSize == 0 ? 0 : 1;
        deal.category = d.category;
        deal.tag = d.tag;
        deal.requester = d.requester;
        deal.beneficiary = d.beneficiary;
        deal.callback = d.callback;
        deal.params = d.params;
        deal.startTime = d.startTime;
        deal.botFirst = d.botFirst;
        deal.botSize = d.botSize;
        deal.workerStake = d.workerStake;
        deal.schedulerRewardRatio = d.schedulerRewardRatio;
        deal.sponsor = d.requester;
    }

    /// @notice Tasks of a batched deal finalized or claimed so far (0 for per-task deals).
    function viewBatchedCount(bytes32 dealid) external view returns (uint256) {
        return _deals[dealid].batchedCount;
    }

    /// @notice A per-task task in PoCo's shape.
    function viewTask(bytes32 taskid) external view returns (PocoTypes.Task memory task) {
        TaskRecord storage t = _tasks[taskid];
        task.status = t.status;
        task.dealid = t.dealid;
        task.idx = t.idx;
        task.timeref = t.timeref;
        task.contributionDeadline = t.contributionDeadline;
        task.finalDeadline = t.finalDeadline;
        task.resultDigest = t.resultDigest;
        task.results = t.results;
        task.resultsTimestamp = t.resultsTimestamp;
        task.resultsCallback = t.resultsCallback;
        if (t.status == PocoTypes.TaskStatusEnum.COMPLETED) {
            task.consensusValue = keccak256(abi.encodePacked(taskid, t.resultDigest));
            task.revealDeadline = uint256(t.resultsTimestamp) + uint256(t.timeref) * REVEAL_DEADLINE_RATIO;
            task.revealCounter = 1;
            task.winnerCounter = 1;
            task.contributors = new address[](1);
            task.contributors[0] = t.worker;
        } else {
            task.contributors = new address[](0);
        }
    }

    /// @notice EIP-1154 result of a completed task: its callback data.
    function resultFor(bytes32 taskid) external view returns (bytes memory) {
        TaskRecord storage t = _tasks[taskid];
        if (t.status != PocoTypes.TaskStatusEnum.COMPLETED) revert TaskNotActive(taskid);
        return t.resultsCallback;
    }
}
