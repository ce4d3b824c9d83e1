// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AppRegistry} from "../registries/AppRegistry.sol";
import {DatasetRegistry} from "../registries/DatasetRegistry.sol";
import {WorkerpoolRegistry} from "../registries/WorkerpoolRegistry.sol";
import {PocoTypes, IPocoHubEvents, IPocoHubErrors} from "./IPocoHub.sol";

/// @title HubStorage
/// @notice Every storage variable and protocol constant of the hub, in one place. Deals and
///         tasks are stored packed (a deal in 10 slots plus params, a task in 3 plus results);
///         views unpack them into PoCo's shapes.
abstract contract HubStorage is IPocoHubEvents, IPocoHubErrors {
    // PoCo's protocol constants.
    uint256 public constant CONTRIBUTION_DEADLINE_RATIO = 7;
    uint256 public constant REVEAL_DEADLINE_RATIO = 2;
    uint256 public constant FINAL_DEADLINE_RATIO = 10;
    uint256 public constant WORKERPOOL_STAKE_RATIO = 30;
    uint256 public constant KITTY_RATIO = 10;
    uint256 public constant KITTY_MIN = 1e9;
    /// @notice Account that holds seized scheduler stakes until successful schedulers earn them.
    address public constant KITTY_ADDRESS = address(uint160(uint256(keccak256("pox.poco.kitty"))));
    /// @notice Gas given to a deal's callback contract (EIP-1154 receiveResult).
    uint256 public constant CALLBACK_GAS = 100_000;
    /// @notice Tag bit 0: the task must run in a TEE.
    bytes32 internal constant TAG_TEE = bytes32(uint256(1));
    /// @notice TEE framework bits (Scone 0x2, Gramine 0x4, TDX 0x8) ignored on dataset tags.
    bytes32 internal constant DATASET_TAG_MASK = ~bytes32(uint256(0x0E));

    /// @notice Tag bit 128 (PoX's, unused by iExec): the deal is batched. It sits in the request
    ///         order (so the requester signs it) and, by PoCo's tag rule, in the workerpool order
    ///         (so the scheduler agrees to it); a deal's mode is thus fixed when it is matched.
    bytes32 public constant TAG_BATCHED = bytes32(uint256(1) << 128);

    /// @dev A deal, packed. Prices are bounded to uint96 at match time (79e9 native coins).
    struct DealRecord {
        address appPointer;
        uint96 appPrice;
        address appOwner;
        uint96 datasetPrice;
        address datasetPointer;
        uint96 workerpoolPrice;
        address datasetOwner;
        uint96 workerStake;
        address workerpoolPointer;
        uint64 botFirst;
        uint32 category;
        address workerpoolOwner;
        uint64 botSize;
        uint8 schedulerRewardRatio;
        address requester;
        uint40 startTime;
        uint40 timeref;
        address beneficiary;
        uint64 batchedCount;
        address callback;
        bytes32 tag;
        string params;
    }

    /// @dev A per-task record, packed.
    struct TaskRecord {
        bytes32 dealid;
        PocoTypes.TaskStatusEnum status;
        uint64 idx;
        uint40 timeref;
        uint40 contributionDeadline;
        uint40 finalDeadline;
        uint40 resultsTimestamp;
        address worker;
        bytes32 resultDigest;
        bytes results;
        bytes resultsCallback;
    }

    /// @dev Escrow account: free balance and frozen (locked) amount in one slot.
    struct AccountRecord {
        uint128 balance;
        uint128 frozen;
    }

    AppRegistry public immutable appregistry;
    DatasetRegistry public immutable datasetregistry;
    WorkerpoolRegistry public immutable workerpoolregistry;
    bytes32 internal immutable _domainSeparator;

    address public owner;
    address public teebroker;
    PocoTypes.Category[] internal _categories;
    mapping(address account => AccountRecord) internal _accounts;
    /// @dev Volume consumed of each order, by EIP-712 order hash.
    mapping(bytes32 orderHash => uint256) internal _consumed;
    /// @dev Who presigned each order, by EIP-712 order hash.
    mapping(bytes32 orderHash => address) internal _presigned;
    mapping(bytes32 dealid => DealRecord) internal _deals;
    mapping(bytes32 taskid => TaskRecord) internal _tasks;
    mapping(bytes32 dealid => PocoTypes.Batch[]) internal _batches;

    constructor(AppRegistry apps, DatasetRegistry datasets, WorkerpoolRegistry workerpools) {
        appregistry = apps;
        datasetregistry = datasets;
        workerpoolregistry = workerpools;
        _domainSeparator = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("iExecODB"),
                keccak256("5.0.0"),
                block.chainid,
                address(this)
            )
        );
    }
}
