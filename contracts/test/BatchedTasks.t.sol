// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {Merkle} from "./utils/Merkle.sol";
import {IPocoHubErrors, IPocoHubEvents, PocoTypes} from "../src/hub/IPocoHub.sol";
import {BatchProofs} from "../src/BatchProofs.sol";
import {PocoOrders} from "../src/libs/PocoOrders.sol";

contract BatchedTasksTest is HubFixture {
    bytes32 dealid;
    uint256 constant VOLUME = 10;

    function setUp() public override {
        super.setUp();
        dealid = matchBatched(VOLUME);
    }

    function digestOf(uint256 idx) internal pure returns (bytes32) {
        return keccak256(abi.encode("result", idx));
    }

    function leaves(bytes32 d, uint256 first, uint256 count) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            bytes32 taskid = keccak256(abi.encodePacked(d, first + i));
            out[i] = Merkle.leaf(abi.encodePacked(taskid, digestOf(first + i)));
        }
    }

    function finalizeBatch(bytes32 d, uint256 first, uint256 count) internal returns (bytes32 batchid, bytes32 root) {
        root = Merkle.root(leaves(d, first, count));
        batchid = hub.batchIdOf(d, first, count);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        vm.prank(worker);
        hub.contributeAndFinalizeBatch(d, first, count, root, "ipfs://batch", enclave, esig, auth);
    }

    function test_batches_finalizeWholeDealAndPayOnce() public {
        bytes32 root = Merkle.root(leaves(dealid, 0, 4));
        bytes32 batchid = keccak256(abi.encodePacked(dealid, uint256(0), uint256(4)));
        vm.assertEq(hub.batchIdOf(dealid, 0, 4), batchid, "batch id");
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.BatchFinalize(dealid, batchid, 0, 4, root, worker, "ipfs://batch");
        finalizeBatch(dealid, 0, 4);
        finalizeBatch(dealid, 4, 6);
        vm.assertEq(hub.countBatches(dealid), 2, "two batches");
        vm.assertEq(hub.viewBatchedCount(dealid), VOLUME, "all done");
        PocoTypes.Batch memory b = hub.viewBatch(dealid, 1);
        vm.assertEq(b.first, 4, "first");
        vm.assertEq(b.count, 6, "count");
        vm.assertEq(b.worker, worker, "worker");

        // exactly VOLUME times the per-task payments
        vm.assertEq(hub.balanceOf(appOwner), VOLUME * APP_PRICE, "app owner");
        vm.assertEq(hub.balanceOf(datasetOwner), VOLUME * DATASET_PRICE, "dataset owner");
        vm.assertEq(hub.balanceOf(worker), VOLUME * (WORKERPOOL_PRICE * 99 / 100), "worker");
        vm.assertEq(hub.frozenOf(requester), 0, "requester fully seized");
        vm.assertEq(hub.frozenOf(scheduler), 0, "stake fully unlocked");

        // nothing left to finalize or claim
        bytes32 extra = hub.batchIdOf(dealid, VOLUME, 1);
        bytes memory auth = authorization(worker, extra, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, extra, root);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.BatchOutOfDeal.selector, VOLUME + 1, VOLUME));
        hub.contributeAndFinalizeBatch(dealid, VOLUME, 1, root, "", enclave, esig, auth);
        vm.warp(block.timestamp + 10 * TIMEREF);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.NothingToClaim.selector, dealid));
        hub.claimBatch(dealid);
    }

    function test_batch_everyTaskResultProvable() public {
        finalizeBatch(dealid, 0, 3);
        finalizeBatch(dealid, 3, 7);
        for (uint256 idx = 0; idx < VOLUME; ++idx) {
            uint256 first = idx < 3 ? 0 : 3;
            uint256 count = idx < 3 ? 3 : 7;
            bytes32[] memory proof = Merkle.path(leaves(dealid, first, count), idx - first);
            vm.assertTrue(proofs.verifyBatchedResult(dealid, idx, digestOf(idx), proof), "proves");
            vm.assertFalse(proofs.verifyBatchedResult(dealid, idx, keccak256("forged"), proof), "forged digest");
            (uint256 i,) = proofs.findBatch(dealid, idx);
            vm.assertEq(i, idx < 3 ? 0 : 1, "batch index");
        }
        vm.assertEq(proofs.taskIdOf(dealid, 2), hub.taskIdOf(dealid, 2), "same task id");
        vm.assertEq(address(proofs.hub()), address(hub), "reads this hub");
        vm.expectRevert(abi.encodeWithSelector(BatchProofs.UnknownBatch.selector, dealid, VOLUME));
        proofs.findBatch(dealid, VOLUME);
    }

    function test_batch_outOfOrderAndEmptyAndUnknownRevert() public {
        bytes32 root = keccak256("root");
        bytes32 batchid = hub.batchIdOf(dealid, 2, 2);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        vm.startPrank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.BatchOutOfOrder.selector, 0, 2));
        hub.contributeAndFinalizeBatch(dealid, 2, 2, root, "", enclave, esig, auth);
        vm.expectRevert(IPocoHubErrors.EmptyBatch.selector);
        hub.contributeAndFinalizeBatch(dealid, 0, 0, root, "", enclave, esig, auth);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.UnknownDeal.selector, bytes32(0)));
        hub.contributeAndFinalizeBatch(bytes32(0), 0, 1, root, "", enclave, esig, auth);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.BatchOutOfDeal.selector, VOLUME + 1, VOLUME));
        hub.contributeAndFinalizeBatch(dealid, 0, VOLUME + 1, root, "", enclave, esig, auth);
        vm.stopPrank();
    }

    function test_batch_replayOfSameBatchReverts() public {
        (bytes32 batchid, bytes32 root) = finalizeBatch(dealid, 0, 5);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.BatchOutOfOrder.selector, 5, 0));
        hub.contributeAndFinalizeBatch(dealid, 0, 5, root, "", enclave, esig, auth);
    }

    function test_batch_signatureChecks() public {
        bytes32 root = Merkle.root(leaves(dealid, 0, 2));
        bytes32 batchid = hub.batchIdOf(dealid, 0, 2);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory wrongEnclave = enclaveSignature(WORKER_KEY, worker, batchid, root);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidEnclaveSignature.selector, enclave));
        hub.contributeAndFinalizeBatch(dealid, 0, 2, root, "", enclave, wrongEnclave, auth);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        // an authorization for a different batch range does not carry over
        bytes memory otherAuth = authorization(worker, hub.batchIdOf(dealid, 0, 3), enclave);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidAuthorization.selector, scheduler));
        hub.contributeAndFinalizeBatch(dealid, 0, 2, root, "", enclave, esig, otherAuth);
        // a different root than the enclave signed
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidEnclaveSignature.selector, enclave));
        hub.contributeAndFinalizeBatch(dealid, 0, 2, keccak256("other"), "", enclave, esig, auth);
        vm.prank(worker);
        vm.expectRevert(IPocoHubErrors.EnclaveChallengeRequired.selector);
        hub.contributeAndFinalizeBatch(dealid, 0, 2, root, "", address(0), esig, auth);
    }

    function test_modes_areFixedAtMatch() public {
        vm.assertTrue(hub.viewDeal(dealid).tag & hub.TAG_BATCHED() != 0, "batched deal carries the tag");
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.DealIsBatched.selector, dealid));
        hub.initialize(dealid, 0);

        bytes32 perTask = matchDefault(VOLUME + 1); // fresh orders (different volume, different hashes)
        vm.assertTrue(hub.viewDeal(perTask).tag & hub.TAG_BATCHED() == 0, "per-task deal has no batch tag");
        bytes32 root = keccak256("root");
        bytes32 batchid = hub.batchIdOf(perTask, 0, 1);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.DealIsPerTask.selector, perTask));
        hub.contributeAndFinalizeBatch(perTask, 0, 1, root, "", enclave, esig, auth);
        vm.warp(block.timestamp + 10 * TIMEREF);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.DealIsPerTask.selector, perTask));
        hub.claimBatch(perTask);
    }

    /// Attack: a stranger calls `initialize(deal, 0)` on a batched deal to switch it to per-task
    /// mode, so that every batched finalize and claim would revert. The call reverts, and the
    /// whole deal is then finalized in batches as agreed.
    function test_attack_initializeCannotSwitchABatchedDeal() public {
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.DealIsBatched.selector, dealid));
        hub.initialize(dealid, 0);
        finalizeBatch(dealid, 0, 4);
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.DealIsBatched.selector, dealid));
        hub.initialize(dealid, 5);
        finalizeBatch(dealid, 4, VOLUME - 4);
        vm.assertEq(hub.viewBatchedCount(dealid), VOLUME, "every task finalized in batches");
    }

    /// Attack, the other way round: a batch claim on a per-task deal whose tasks are running.
    function test_attack_claimBatchCannotTouchAPerTaskDeal() public {
        bytes32 perTask = matchDefault(2);
        bytes32 taskid = hub.initialize(perTask, 0);
        vm.warp(block.timestamp + 10 * TIMEREF);
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.DealIsPerTask.selector, perTask));
        hub.claimBatch(perTask);
        hub.claim(taskid);
        vm.assertEq(uint8(hub.viewTask(taskid).status), uint8(PocoTypes.TaskStatusEnum.FAILED), "claimed per task");
    }

    function test_batch_afterContributionDeadlineReverts() public {
        uint256 deadline = block.timestamp + 7 * TIMEREF;
        vm.warp(deadline);
        bytes32 root = keccak256("root");
        bytes32 batchid = hub.batchIdOf(dealid, 0, 1);
        bytes memory auth = authorization(worker, batchid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, batchid, root);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.ContributionDeadlinePassed.selector, deadline));
        hub.contributeAndFinalizeBatch(dealid, 0, 1, root, "", enclave, esig, auth);
    }

    function test_batch_callbackDealsNotBatchable() public {
        PocoOrders.AppOrder memory a = appOrder(1);
        PocoOrders.DatasetOrder memory d = datasetOrder(1);
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(1);
        PocoOrders.RequestOrder memory r = requestOrder(1);
        r.callback = address(0xCA11);
        w.tag = TEE_TAG | hub.TAG_BATCHED();
        r.tag = TEE_TAG | hub.TAG_BATCHED();
        resignWorkerpool(w);
        resignRequest(r);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.CallbackNotBatchable.selector, address(0xCA11)));
        hub.matchOrders(a, d, w, r);
    }

    function test_claimBatch_refundsRemainder() public {
        finalizeBatch(dealid, 0, 4);
        uint256 finalDeadline = block.timestamp + 10 * TIMEREF;
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.FinalDeadlineNotReached.selector, finalDeadline));
        hub.claimBatch(dealid);
        vm.warp(finalDeadline);
        uint256 requesterFree = hub.balanceOf(requester);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.BatchClaimed(dealid, 4, 6);
        hub.claimBatch(dealid);
        vm.assertEq(
            hub.balanceOf(requester), requesterFree + 6 * (APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE), "refund"
        );
        vm.assertEq(hub.frozenOf(requester), 0, "nothing locked");
        vm.assertEq(hub.frozenOf(scheduler), 0, "stake gone");
        vm.assertEq(hub.frozenOf(hub.KITTY_ADDRESS()), 6 * (WORKERPOOL_PRICE * 30 / 100), "kitty");
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.NothingToClaim.selector, dealid));
        hub.claimBatch(dealid);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.UnknownDeal.selector, bytes32(uint256(1))));
        hub.claimBatch(bytes32(uint256(1)));
    }

    /// Fuzz: any split of a deal into consecutive batches pays exactly once per task, and every
    /// task's result is provable against its batch.
    function testFuzz_batchSplits(uint8 s1, uint8 s2, uint16 probe) public {
        uint256 a = bound(s1, 1, VOLUME - 2);
        uint256 b = bound(s2, 1, VOLUME - a - 1);
        uint256 c = VOLUME - a - b;
        finalizeBatch(dealid, 0, a);
        finalizeBatch(dealid, a, b);
        finalizeBatch(dealid, a + b, c);
        vm.assertEq(hub.balanceOf(appOwner), VOLUME * APP_PRICE, "paid once per task");
        vm.assertEq(hub.frozenOf(requester), 0, "all seized");
        uint256 idx = bound(probe, 0, VOLUME - 1);
        (, PocoTypes.Batch memory batch) = proofs.findBatch(dealid, idx);
        bytes32[] memory proof = Merkle.path(leaves(dealid, batch.first, batch.count), idx - batch.first);
        vm.assertTrue(proofs.verifyBatchedResult(dealid, idx, digestOf(idx), proof), "provable");
    }
}
