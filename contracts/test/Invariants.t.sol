// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./utils/Vm.sol";
import {HubFixture} from "./utils/HubFixture.sol";
import {PocoTypes} from "../src/hub/IPocoHub.sol";
import {PocoOrders} from "../src/libs/PocoOrders.sol";

/// @notice Drives the hub through random sequences of deposits, withdrawals, deals, tasks,
///         contributions, batches, claims and time jumps, keeping ghost books of what it did.
///         Calls the hub may refuse (a deadline passed, a task already done) are caught, so the
///         ghost counters record what really happened: the test asserts after every run that
///         deals were matched and tasks completed, so the invariants cannot hold vacuously.
contract HubHandler is HubFixture {
    bytes32[] public deals;
    bytes32[] public tasks;
    mapping(bytes32 taskid => uint256) public finalizations;
    mapping(bytes32 taskid => uint8) public lastStatus;
    uint256 public completedTasks;
    uint256 public dealsMatched;
    uint256 public batchedDealsMatched;
    uint256 public tasksInitialized;
    bool public statusWentBack;
    bool public finalizedTwice;
    uint256 private salt;

    constructor() {
        setUp();
    }

    function actors() public view returns (address[8] memory) {
        return [appOwner, datasetOwner, scheduler, requester, worker, enclave, broker, hub.KITTY_ADDRESS()];
    }

    function deposit(uint96 amount, bool toScheduler) external {
        fund(toScheduler ? scheduler : requester, amount);
        _checkStatuses();
    }

    function withdraw(uint96 amount, bool fromScheduler) external {
        address who = fromScheduler ? scheduler : requester;
        uint256 free = hub.balanceOf(who);
        if (free == 0) return;
        vm.prank(who);
        hub.withdraw(bound(amount, 0, free));
        _checkStatuses();
    }

    function matchDeal(uint8 volumeSeed, bool batched) external {
        _matchDeal(volumeSeed, batched);
        _checkStatuses();
    }

    function _matchDeal(uint8 volumeSeed, bool batched) private {
        uint256 volume = bound(volumeSeed, 1, 8);
        PocoOrders.AppOrder memory a = appOrder(volume);
        PocoOrders.DatasetOrder memory d = datasetOrder(volume);
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(volume);
        PocoOrders.RequestOrder memory r = requestOrder(volume);
        bytes32 s = keccak256(abi.encode(++salt));
        (a.salt, d.salt, w.salt, r.salt) = (s, s, s, s);
        if (batched) (w.tag, r.tag) = (w.tag | hub.TAG_BATCHED(), r.tag | hub.TAG_BATCHED());
        resignApp(a);
        resignDataset(d);
        resignWorkerpool(w);
        resignRequest(r);
        try hub.matchOrders(a, d, w, r) returns (bytes32 dealid) {
            deals.push(dealid);
            dealsMatched += 1;
            if (batched) batchedDealsMatched += 1;
        } catch {}
    }

    /// @dev A deal of the wanted mode that still takes contributions, starting the search at
    ///      `dealSeed`; when there is none (time jumps close deals fast), a fresh one is matched,
    ///      so that calls exercise the hub instead of returning early. Zero if matching failed.
    function _openDeal(uint8 dealSeed, bool batched) private returns (bytes32) {
        for (uint256 k = 0; k < deals.length; ++k) {
            bytes32 dealid = deals[(dealSeed + k) % deals.length];
            PocoTypes.Deal memory deal = hub.viewDeal(dealid);
            if ((deal.tag & hub.TAG_BATCHED() != 0) != batched) continue;
            if (block.timestamp >= deal.startTime + TIMEREF * 7) continue;
            if (batched && hub.viewBatchedCount(dealid) >= deal.botSize) continue;
            return dealid;
        }
        uint256 before = deals.length;
        _matchDeal(dealSeed, batched);
        return deals.length > before ? deals[before] : bytes32(0);
    }

    /// @dev Finalize `taskid`, counting what the hub accepted.
    function _contribute(bytes32 taskid, bytes32 digest) private returns (bool) {
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, digest);
        vm.prank(worker);
        try hub.contributeAndFinalize(taskid, digest, "", "", enclave, esig, auth) {
            finalizations[taskid] += 1;
            if (finalizations[taskid] > 1) finalizedTwice = true;
            completedTasks += 1;
            return true;
        } catch {
            return false;
        }
    }

    function initializeTask(uint8 dealSeed, uint8 idxSeed) external {
        bytes32 dealid = deals.length > 0 ? deals[dealSeed % deals.length] : _openDeal(dealSeed, false);
        if (dealid == bytes32(0)) return;
        PocoTypes.Deal memory deal = hub.viewDeal(dealid);
        uint256 idx = deal.botFirst + idxSeed % deal.botSize;
        try hub.initialize(dealid, idx) returns (bytes32 taskid) {
            tasks.push(taskid);
            tasksInitialized += 1;
        } catch {}
        _checkStatuses();
    }

    /// @dev First the picked task, which may be done, late or never opened (the hub must refuse
    ///      those); when refused, a fresh task of an open per-task deal, which it must accept.
    function contributeTask(uint8 taskSeed, bytes32 digest) external {
        if (tasks.length > 0 && _contribute(tasks[taskSeed % tasks.length], digest)) {
            _checkStatuses();
            return;
        }
        bytes32 dealid = _openDeal(taskSeed, false);
        if (dealid == bytes32(0)) return;
        PocoTypes.Deal memory deal = hub.viewDeal(dealid);
        for (uint256 idx = deal.botFirst; idx < deal.botFirst + deal.botSize; ++idx) {
            try hub.initialize(dealid, idx) returns (bytes32 taskid) {
                tasks.push(taskid);
                tasksInitialized += 1;
                _contribute(taskid, digest);
                break;
            } catch {}
        }
        _checkStatuses();
    }

    function claimTask(uint8 taskSeed) external {
        if (tasks.length == 0) return;
        try hub.claim(tasks[taskSeed % tasks.length]) {} catch {}
        _checkStatuses();
    }

    function finalizeBatch(uint8 dealSeed, uint8 countSeed, bytes32 root) external {
        bytes32 dealid = _openDeal(dealSeed, true);
        if (dealid == bytes32(0)) return;
        PocoTypes.Deal memory deal = hub.viewDeal(dealid);
        uint256 done = hub.viewBatchedCount(dealid);
        if (done >= deal.botSize) return;
        uint256 count = bound(countSeed, 1, deal.botSize - done);
        uint256 first = deal.botFirst + done;
        bytes32 batchid = hub.batchIdOf(dealid, first, count);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        vm.prank(worker);
        try hub.contributeAndFinalizeBatch(dealid, first, count, root, "", enclave, esig, auth) {
            completedTasks += count;
        } catch {}
        _checkStatuses();
    }

    function claimBatch(uint8 dealSeed) external {
        if (deals.length == 0) return;
        try hub.claimBatch(deals[dealSeed % deals.length]) {} catch {}
        _checkStatuses();
    }

    function advanceTime(uint16 seconds_) external {
        vm.warp(block.timestamp + seconds_);
        _checkStatuses();
    }

    function taskCount() external view returns (uint256) {
        return tasks.length;
    }

    function _checkStatuses() private {
        for (uint256 i = 0; i < tasks.length; ++i) {
            uint8 status = uint8(hub.viewTask(tasks[i]).status);
            if (status < lastStatus[tasks[i]]) statusWentBack = true;
            lastStatus[tasks[i]] = status;
        }
    }
}

contract HubInvariantsTest is TestBase {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    HubHandler handler;

    function setUp() public {
        handler = new HubHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory out) {
        bytes4[] memory s = new bytes4[](9);
        s[0] = HubHandler.deposit.selector;
        s[1] = HubHandler.withdraw.selector;
        s[2] = HubHandler.matchDeal.selector;
        s[3] = HubHandler.initializeTask.selector;
        s[4] = HubHandler.contributeTask.selector;
        s[5] = HubHandler.claimTask.selector;
        s[6] = HubHandler.finalizeBatch.selector;
        s[7] = HubHandler.claimBatch.selector;
        s[8] = HubHandler.advanceTime.selector;
        out = new FuzzSelector[](1);
        out[0] = FuzzSelector(address(handler), s);
    }

    /// Progress, checked at the end of every run: the handlers matched deals and completed tasks,
    /// so the invariants were held by a hub that did work, not by one whose every call reverted.
    function afterInvariant() public view {
        vm.assertGt(handler.dealsMatched(), 0, "no deal was matched");
        vm.assertGt(handler.completedTasks(), 0, "no task was completed");
    }

    /// The hub's native balance is exactly what its accounts hold, free or frozen.
    function invariant_nativeBalanceEqualsAccounts() public view {
        address hubAddress = address(handler.hub());
        address[8] memory actors = handler.actors();
        uint256 sum = 0;
        for (uint256 i = 0; i < actors.length; ++i) {
            sum += handler.hub().balanceOf(actors[i]) + handler.hub().frozenOf(actors[i]);
        }
        vm.assertEq(hubAddress.balance, sum, "native balance == balances + frozen");
    }

    /// A task is finalized at most once.
    function invariant_taskFinalizedAtMostOnce() public view {
        vm.assertFalse(handler.finalizedTwice(), "finalized twice");
    }

    /// Task status only moves forward (UNSET -> ACTIVE -> COMPLETED | FAILED).
    function invariant_statusOnlyMovesForward() public view {
        vm.assertFalse(handler.statusWentBack(), "status went back");
    }

    /// Nothing is paid twice: the app owner (who never withdraws) earned exactly one app price
    /// per completed task, per-task or batched.
    function invariant_nothingPaidTwice() public view {
        vm.assertEq(
            handler.hub().balanceOf(handler.actors()[0]),
            handler.completedTasks() * 1e9,
            "app owner paid once per completed task"
        );
        vm.assertEq(
            handler.hub().balanceOf(handler.actors()[1]),
            handler.completedTasks() * 2e9,
            "dataset owner paid once per completed task"
        );
    }
}
