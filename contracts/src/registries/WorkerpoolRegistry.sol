// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EntryRegistry} from "./EntryRegistry.sol";

/// @title WorkerpoolRegistry
/// @notice Registry of workerpools: a description plus the stake and reward policy a deal copies
///         when it is made (worker stake ratio and scheduler reward ratio, both percentages, PoCo
///         defaults 30 and 1). One ERC-721 token per workerpool; the token owner is its scheduler.
contract WorkerpoolRegistry is EntryRegistry {
    struct WorkerpoolInfo {
        string description;
        uint8 workerStakeRatioPolicy;
        uint8 schedulerRewardRatioPolicy;
    }

    /// @notice A new workerpool was registered at `workerpool` for `owner`.
    event WorkerpoolCreated(address indexed workerpool, address indexed owner, string description);
    /// @notice PoCo's policy update event.
    event PolicyUpdate(
        address indexed workerpool,
        uint256 oldWorkerStakeRatioPolicy,
        uint256 newWorkerStakeRatioPolicy,
        uint256 oldSchedulerRewardRatioPolicy,
        uint256 newSchedulerRewardRatioPolicy
    );

    error RatioAbove100(uint256 ratio);

    uint8 public constant DEFAULT_WORKER_STAKE_RATIO = 30;
    uint8 public constant DEFAULT_SCHEDULER_REWARD_RATIO = 1;

    mapping(address workerpool => WorkerpoolInfo) private _workerpools;

    constructor() EntryRegistry("PoX Workerpools", "POXPOOL") {}

    /// @notice Register a workerpool with PoCo's default policy.
    function createWorkerpool(address owner, string calldata description) external returns (address workerpool) {
        workerpool = _register(owner, keccak256(bytes(description)));
        _workerpools[workerpool] =
            WorkerpoolInfo(description, DEFAULT_WORKER_STAKE_RATIO, DEFAULT_SCHEDULER_REWARD_RATIO);
        emit WorkerpoolCreated(workerpool, owner, description);
    }

    /// @notice Change the policy future deals of this workerpool copy. Only its owner.
    function changePolicy(address workerpool, uint256 workerStakeRatioPolicy, uint256 schedulerRewardRatioPolicy)
        external
    {
        _onlyEntryOwner(workerpool);
        if (workerStakeRatioPolicy > 100) revert RatioAbove100(workerStakeRatioPolicy);
        if (schedulerRewardRatioPolicy > 100) revert RatioAbove100(schedulerRewardRatioPolicy);
        WorkerpoolInfo storage info = _workerpools[workerpool];
        emit PolicyUpdate(
            workerpool,
            info.workerStakeRatioPolicy,
            workerStakeRatioPolicy,
            info.schedulerRewardRatioPolicy,
            schedulerRewardRatioPolicy
        );
        info.workerStakeRatioPolicy = uint8(workerStakeRatioPolicy);
        info.schedulerRewardRatioPolicy = uint8(schedulerRewardRatioPolicy);
    }

    /// @notice Owner and policy of a registered workerpool, in one call for the hub.
    function policyOf(address workerpool)
        external
        view
        returns (address owner, uint256 workerStakeRatioPolicy, uint256 schedulerRewardRatioPolicy)
    {
        owner = ownerOfEntry(workerpool);
        WorkerpoolInfo storage info = _workerpools[workerpool];
        return (owner, info.workerStakeRatioPolicy, info.schedulerRewardRatioPolicy);
    }

    /// @notice Metadata of a registered workerpool.
    function viewWorkerpool(address workerpool) external view returns (WorkerpoolInfo memory) {
        if (!isRegistered(workerpool)) revert EntryNotRegistered(workerpool);
        return _workerpools[workerpool];
    }
}
