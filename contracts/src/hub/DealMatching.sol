// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {OrderBook} from "./OrderBook.sol";
import {PocoOrders} from "../libs/PocoOrders.sol";

/// @title DealMatching
/// @notice `matchOrders`: PoCo's checks on four orders (category, trust, prices, tags with the
///         TEE bit and its subset rule, app/dataset/workerpool/requester restrictions, registry
///         membership, signatures or presignatures, remaining volume), then a deal with PoCo's
///         deal id `keccak256(requestHash, consumed[requestHash])` and the escrow locks.
///         This hub only runs TEE tasks through `contributeAndFinalize`, so a deal must carry
///         the TEE tag bit and a trust of at most 1 (PoCo's value for that path). A deal whose
///         tag carries `TAG_BATCHED` is batched from the start and cannot have a callback; any
///         other deal is per-task. Nothing later can change a deal's mode.
abstract contract DealMatching is OrderBook {
    using PocoOrders for PocoOrders.AppOrder;
    using PocoOrders for PocoOrders.DatasetOrder;
    using PocoOrders for PocoOrders.WorkerpoolOrder;
    using PocoOrders for PocoOrders.RequestOrder;

    /// @dev Values computed while matching, kept in memory to stay under the stack limit.
    struct Matching {
        bytes32 appHash;
        bytes32 datasetHash;
        bytes32 workerpoolHash;
        bytes32 requestHash;
        address appOwner;
        address datasetOwner;
        address workerpoolOwner;
        uint256 workerStakeRatio;
        uint256 schedulerRewardRatio;
        bytes32 tag;
        uint256 volume;
        bool hasDataset;
    }

    /// @notice Match an app, a dataset (or an empty dataset order), a workerpool and a request
    ///         order into a deal of `volume` tasks; locks the requester's payment and the
    ///         scheduler's stake for every task.
    /// @return dealid PoCo's deal id.
    function matchOrders(
        PocoOrders.AppOrder calldata apporder,
        PocoOrders.DatasetOrder calldata datasetorder,
        PocoOrders.WorkerpoolOrder calldata workerpoolorder,
        PocoOrders.RequestOrder calldata requestorder
    ) external returns (bytes32 dealid) {
        Matching memory m;
        m.tag = _checkTerms(apporder, datasetorder, workerpoolorder, requestorder);
        if (m.tag & TAG_BATCHED != 0 && requestorder.callback != address(0)) {
            revert CallbackNotBatchable(requestorder.callback);
        }
        _checkRestrictions(apporder, datasetorder, workerpoolorder, requestorder);
        _checkEntriesAndSignatures(m, apporder, datasetorder, workerpoolorder, requestorder);
        m.volume = _dealVolume(m, apporder, datasetorder, workerpoolorder, requestorder);
        if (m.volume == 0) revert NoVolumeLeft();
        dealid = _storeDeal(m, apporder, datasetorder, workerpoolorder, requestorder);

        _consumed[m.appHash] += m.volume;
        if (m.hasDataset) _consumed[m.datasetHash] += m.volume;
        _consumed[m.workerpoolHash] += m.volume;
        _consumed[m.requestHash] += m.volume;

        DealRecord storage deal = _deals[dealid];
        uint256 taskPrice = uint256(deal.appPrice) + deal.datasetPrice + deal.workerpoolPrice;
        _lock(requestorder.requester, taskPrice * m.volume);
        _lock(m.workerpoolOwner, (uint256(deal.workerpoolPrice) * WORKERPOOL_STAKE_RATIO / 100) * m.volume);

        emit SchedulerNotice(workerpoolorder.workerpool, dealid);
        emit OrdersMatched(dealid, m.appHash, m.datasetHash, m.workerpoolHash, m.requestHash, m.volume);
    }

    function _checkTerms(
        PocoOrders.AppOrder calldata apporder,
        PocoOrders.DatasetOrder calldata datasetorder,
        PocoOrders.WorkerpoolOrder calldata workerpoolorder,
        PocoOrders.RequestOrder calldata requestorder
    ) private view returns (bytes32 tag) {
        if (requestorder.category != workerpoolorder.category) {
            revert CategoryMismatch(requestorder.category, workerpoolorder.category);
        }
        if (requestorder.category >= _categories.length) revert UnknownCategory(requestorder.category);
        if (requestorder.trust > workerpoolorder.trust) {
            revert TrustNotOffered(requestorder.trust, workerpoolorder.trust);
        }
        if (requestorder.trust > 1) revert UnsupportedTrust(requestorder.trust);
        if (requestorder.appmaxprice < apporder.appprice) {
            revert AppPriceTooHigh(apporder.appprice, requestorder.appmaxprice);
        }
        if (requestorder.datasetmaxprice < datasetorder.datasetprice) {
            revert DatasetPriceTooHigh(datasetorder.datasetprice, requestorder.datasetmaxprice);
        }
        if (requestorder.workerpoolmaxprice < workerpoolorder.workerpoolprice) {
            revert WorkerpoolPriceTooHigh(workerpoolorder.workerpoolprice, requestorder.workerpoolmaxprice);
        }
        tag = apporder.tag | (datasetorder.tag & DATASET_TAG_MASK) | requestorder.tag;
        if (tag & ~workerpoolorder.tag != 0) revert TagNotSupportedByWorkerpool(tag, workerpoolorder.tag);
        if ((tag ^ apporder.tag) & TAG_TEE != 0) revert TeeTagNotDeclaredByApp(tag, apporder.tag);
        if (tag & TAG_TEE == 0) revert TeeRequired(tag);
    }

    function _checkRestrictions(
        PocoOrders.AppOrder calldata apporder,
        PocoOrders.DatasetOrder calldata datasetorder,
        PocoOrders.WorkerpoolOrder calldata workerpoolorder,
        PocoOrders.RequestOrder calldata requestorder
    ) private pure {
        if (requestorder.app != apporder.app) {
            revert AppMismatch(requestorder.app, apporder.app);
        }
        if (requestorder.dataset != datasetorder.dataset) {
            revert DatasetMismatch(requestorder.dataset, datasetorder.dataset);
        }
        address app = apporder.app;
        address dataset = datasetorder.dataset;
        address workerpool = workerpoolorder.workerpool;
        address requester = requestorder.requester;
        _restrict(0x12, requestorder.workerpool, workerpool);
        _restrict(0x13, apporder.datasetrestrict, dataset);
        _restrict(0x14, apporder.workerpoolrestrict, workerpool);
        _restrict(0x15, apporder.requesterrestrict, requester);
        _restrict(0x16, datasetorder.apprestrict, app);
        _restrict(0x17, datasetorder.workerpoolrestrict, workerpool);
        _restrict(0x18, datasetorder.requesterrestrict, requester);
        _restrict(0x19, workerpoolorder.apprestrict, app);
        _restrict(0x1a, workerpoolorder.datasetrestrict, dataset);
        _restrict(0x1b, workerpoolorder.requesterrestrict, requester);
    }

    /// @dev A zero restriction allows anyone; otherwise it must name the account exactly.
    function _restrict(uint8 which, address restriction, address actual) private pure {
        if (restriction != address(0) && restriction != actual) {
            revert RestrictionViolated(which, restriction, actual);
        }
    }

    function _checkEntriesAndSignatures(
        Matching memory m,
        PocoOrders.AppOrder calldata apporder,
        PocoOrders.DatasetOrder calldata datasetorder,
        PocoOrders.WorkerpoolOrder calldata workerpoolorder,
        PocoOrders.RequestOrder calldata requestorder
    ) private view {
        if (!appregistry.isRegistered(apporder.app)) {
            revert AppNotRegistered(apporder.app);
        }
        m.appHash = _typedHash(apporder.hash());
        m.appOwner = appregistry.ownerOfEntry(apporder.app);
        if (!_isSignedOrPresigned(m.appOwner, m.appHash, apporder.sign)) {
            revert InvalidOrderSignature(m.appHash, m.appOwner);
        }

        m.hasDataset = datasetorder.dataset != address(0);
        if (m.hasDataset) {
            if (!datasetregistry.isRegistered(datasetorder.dataset)) {
                revert DatasetNotRegistered(datasetorder.dataset);
            }
            m.datasetHash = _typedHash(datasetorder.hash());
            m.datasetOwner = datasetregistry.ownerOfEntry(datasetorder.dataset);
            if (!_isSignedOrPresigned(m.datasetOwner, m.datasetHash, datasetorder.sign)) {
                revert InvalidOrderSignature(m.datasetHash, m.datasetOwner);
            }
        }

        if (!workerpoolregistry.isRegistered(workerpoolorder.workerpool)) {
            revert WorkerpoolNotRegistered(workerpoolorder.workerpool);
        }
        m.workerpoolHash = _typedHash(workerpoolorder.hash());
        (m.workerpoolOwner, m.workerStakeRatio, m.schedulerRewardRatio) =
            workerpoolregistry.policyOf(workerpoolorder.workerpool);
        if (!_isSignedOrPresigned(m.workerpoolOwner, m.workerpoolHash, workerpoolorder.sign)) {
            revert InvalidOrderSignature(m.workerpoolHash, m.workerpoolOwner);
        }

        m.requestHash = _typedHash(requestorder.hash());
        if (!_isSignedOrPresigned(requestorder.requester, m.requestHash, requestorder.sign)) {
            revert InvalidOrderSignature(m.requestHash, requestorder.requester);
        }
    }

    /// @dev Smallest remaining volume among the orders (the dataset's only when there is one).
    function _dealVolume(
        Matching memory m,
        PocoOrders.AppOrder calldata apporder,
        PocoOrders.DatasetOrder calldata datasetorder,
        PocoOrders.WorkerpoolOrder calldata workerpoolorder,
        PocoOrders.RequestOrder calldata requestorder
    ) private view returns (uint256 volume) {
        volume = _remaining(apporder.volume, m.appHash);
        if (m.hasDataset) volume = _min(volume, _remaining(datasetorder.volume, m.datasetHash));
        volume = _min(volume, _remaining(workerpoolorder.volume, m.workerpoolHash));
        volume = _min(volume, _remaining(requestorder.volume, m.requestHash));
    }

    function _remaining(uint256 volume, bytes32 orderHash) private view returns (uint256) {
        uint256 consumed = _consumed[orderHash];
        return volume > consumed ? volume - consumed : 0;
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }

    function _storeDeal(
        Matching memory m,
        PocoOrders.AppOrder calldata apporder,
        PocoOrders.DatasetOrder calldata datasetorder,
        PocoOrders.WorkerpoolOrder calldata workerpoolorder,
        PocoOrders.RequestOrder calldata requestorder
    ) private returns (bytes32 dealid) {
        uint256 botFirst = _consumed[m.requestHash];
        dealid = keccak256(abi.encodePacked(m.requestHash, botFirst));
        // Bounds keep the packed record exact; real deals are far below them.
        uint256 datasetPrice = m.hasDataset ? datasetorder.datasetprice : 0;
        if (
            apporder.appprice > type(uint96).max || datasetPrice > type(uint96).max
                || workerpoolorder.workerpoolprice > type(uint96).max
        ) revert AmountTooLarge(apporder.appprice + datasetPrice + workerpoolorder.workerpoolprice);
        if (m.volume > type(uint64).max || botFirst + m.volume > type(uint64).max) {
            revert AmountTooLarge(m.volume);
        }
        uint256 timeref = _categories[requestorder.category].workClockTimeRef;

        // One struct assignment lets the compiler write each packed slot once.
        _deals[dealid] = DealRecord({
            appPointer: apporder.app,
            appPrice: uint96(apporder.appprice),
            appOwner: m.appOwner,
            datasetPrice: uint96(datasetPrice),
            datasetPointer: datasetorder.dataset,
            workerpoolPrice: uint96(workerpoolorder.workerpoolprice),
            datasetOwner: m.datasetOwner,
            workerStake: uint96(workerpoolorder.workerpoolprice * m.workerStakeRatio / 100),
            workerpoolPointer: workerpoolorder.workerpool,
            botFirst: uint64(botFirst),
            category: uint32(requestorder.category),
            workerpoolOwner: m.workerpoolOwner,
            botSize: uint64(m.volume),
            schedulerRewardRatio: uint8(m.schedulerRewardRatio),
            requester: requestorder.requester,
            startTime: uint40(block.timestamp),
            timeref: uint40(timeref),
            beneficiary: requestorder.beneficiary,
            batchedCount: 0,
            callback: requestorder.callback,
            tag: m.tag,
            params: requestorder.params
        });
    }
}
