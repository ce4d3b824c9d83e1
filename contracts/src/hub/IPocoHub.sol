// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title PocoTypes
/// @notice The shapes the hub's views return, named and ordered as in PoCo's `IexecLibCore_v5`
///         so that clients written for iExec read them unchanged.
library PocoTypes {
    enum TaskStatusEnum {
        UNSET,
        ACTIVE,
        REVEALING,
        COMPLETED,
        FAILED
    }

    struct Account {
        uint256 stake;
        uint256 locked;
    }

    struct Category {
        string name;
        string description;
        uint256 workClockTimeRef;
    }

    struct Resource {
        address pointer;
        address owner;
        uint256 price;
    }

    struct Deal {
        Resource app;
        Resource dataset;
        Resource workerpool;
        uint256 trust;
        uint256 category;
        bytes32 tag;
        address requester;
        address beneficiary;
        address callback;
        string params;
        uint256 startTime;
        uint256 botFirst;
        uint256 botSize;
        uint256 workerStake;
        uint256 schedulerRewardRatio;
        address sponsor;
    }

    struct Task {
        TaskStatusEnum status;
        bytes32 dealid;
        uint256 idx;
        uint256 timeref;
        uint256 contributionDeadline;
        uint256 revealDeadline;
        uint256 finalDeadline;
        bytes32 consensusValue;
        uint256 revealCounter;
        uint256 winnerCounter;
        address[] contributors;
        bytes32 resultDigest;
        bytes results;
        uint256 resultsTimestamp;
        bytes resultsCallback;
    }

    /// @notice One finalized batch of a batched deal: tasks [first, first + count) and the
    ///         RFC 9162 root over their (task id, result digest) leaves.
    struct Batch {
        uint64 first;
        uint64 count;
        address worker;
        bytes32 resultsRoot;
    }
}

/// @title IPocoHubEvents
/// @notice Events of the hub. Escrow, order and task events are PoCo's; batch events are ours.
interface IPocoHubEvents {
    // Escrow (PoCo IexecEscrow / ERC-20 style)
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Lock(address owner, uint256 amount);
    event Unlock(address owner, uint256 amount);
    event Reward(address owner, uint256 amount, bytes32 ref);
    event Seize(address owner, uint256 amount, bytes32 ref);

    // Order management
    event SignedAppOrder(bytes32 appHash);
    event SignedDatasetOrder(bytes32 datasetHash);
    event SignedWorkerpoolOrder(bytes32 workerpoolHash);
    event SignedRequestOrder(bytes32 requestHash);
    event ClosedAppOrder(bytes32 appHash);
    event ClosedDatasetOrder(bytes32 datasetHash);
    event ClosedWorkerpoolOrder(bytes32 workerpoolHash);
    event ClosedRequestOrder(bytes32 requestHash);

    // Deals and tasks
    event SchedulerNotice(address indexed workerpool, bytes32 dealid);
    event OrdersMatched(
        bytes32 dealid,
        bytes32 appHash,
        bytes32 datasetHash,
        bytes32 workerpoolHash,
        bytes32 requestHash,
        uint256 volume
    );
    event TaskInitialize(bytes32 indexed taskid, address indexed workerpool);
    event TaskContribute(bytes32 indexed taskid, address indexed worker, bytes32 hash);
    event TaskConsensus(bytes32 indexed taskid, bytes32 consensus);
    event TaskReveal(bytes32 indexed taskid, address indexed worker, bytes32 digest);
    event TaskFinalize(bytes32 indexed taskid, bytes results);
    event TaskClaimed(bytes32 indexed taskid);

    // Batched path
    event BatchFinalize(
        bytes32 indexed dealid,
        bytes32 indexed batchid,
        uint256 first,
        uint256 count,
        bytes32 resultsRoot,
        address worker,
        bytes results
    );
    event BatchClaimed(bytes32 indexed dealid, uint256 first, uint256 count);

    // Administration
    event CreateCategory(uint256 catid, string name, string description, uint256 workClockTimeRef);
    event TeeBrokerChanged(address previous, address current);
}

/// @title IPocoHubErrors
/// @notice Every way a hub call can be refused, with the values a user needs to see why.
interface IPocoHubErrors {
    // Escrow
    error InsufficientBalance(address account, uint256 available, uint256 needed);
    error InsufficientFrozen(address account, uint256 available, uint256 needed);
    error NativeTransferFailed(address to, uint256 amount);
    error ZeroAddress();
    error AmountTooLarge(uint256 amount);

    // Orders
    error InvalidSenderOrSignature(address owner, address sender);

    // Matching
    error CategoryMismatch(uint256 requested, uint256 offered);
    error UnknownCategory(uint256 category);
    error TrustNotOffered(uint256 requested, uint256 offered);
    error UnsupportedTrust(uint256 trust);
    error AppPriceTooHigh(uint256 price, uint256 maxPrice);
    error DatasetPriceTooHigh(uint256 price, uint256 maxPrice);
    error WorkerpoolPriceTooHigh(uint256 price, uint256 maxPrice);
    error TagNotSupportedByWorkerpool(bytes32 tag, bytes32 workerpoolTag);
    error TeeTagNotDeclaredByApp(bytes32 tag, bytes32 appTag);
    error TeeRequired(bytes32 tag);
    error AppMismatch(address requested, address offered);
    error DatasetMismatch(address requested, address offered);
    /// @param which 0x12..0x1b, PoCo's restriction check number.
    error RestrictionViolated(uint8 which, address restriction, address actual);
    error AppNotRegistered(address app);
    error DatasetNotRegistered(address dataset);
    error WorkerpoolNotRegistered(address workerpool);
    error InvalidOrderSignature(bytes32 orderHash, address expectedSigner);
    error NoVolumeLeft();

    // Tasks
    error TaskIndexOutOfDeal(bytes32 dealid, uint256 idx);
    error UnknownDeal(bytes32 dealid);
    /// @notice `initialize` was called on a batched deal (`TAG_BATCHED`, fixed at match).
    error DealIsBatched(bytes32 dealid);
    /// @notice A batched call was made on a per-task deal (no `TAG_BATCHED`, fixed at match).
    error DealIsPerTask(bytes32 dealid);
    error TaskNotActive(bytes32 taskid);
    error ContributionDeadlinePassed(uint256 deadline);
    error FinalDeadlineNotReached(uint256 deadline);
    error EnclaveChallengeRequired();
    error InvalidResultsCallback();
    error InvalidAuthorization(address expectedSigner);
    error InvalidEnclaveSignature(address enclaveChallenge);
    error ArrayLengthMismatch();
    error InsufficientGasForCallback();

    // Batches
    error BatchOutOfOrder(uint256 expectedFirst, uint256 first);
    error BatchOutOfDeal(uint256 end, uint256 dealEnd);
    error EmptyBatch();
    error CallbackNotBatchable(address callback);
    error NothingToClaim(bytes32 dealid);

    // Administration
    error NotOwner(address caller);
}
