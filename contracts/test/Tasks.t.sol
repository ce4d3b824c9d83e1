// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {IPocoHubErrors, IPocoHubEvents, PocoTypes} from "../src/hub/IPocoHub.sol";
import {PocoOrders} from "../src/libs/PocoOrders.sol";

contract RecordingConsumer {
    bytes32 public lastId;
    bytes public lastResult;

    function receiveResult(bytes32 id, bytes calldata result) external {
        lastId = id;
        lastResult = result;
    }
}

contract RevertingConsumer {
    function receiveResult(bytes32, bytes calldata) external pure {
        revert("consumer broken");
    }
}

contract TasksTest is HubFixture {
    bytes32 dealid;
    bytes32 constant DIGEST = keccak256("result archive");

    function setUp() public override {
        super.setUp();
        dealid = matchDefault(3);
    }

    function test_initialize_opensPocoTask() public {
        bytes32 expected = keccak256(abi.encodePacked(dealid, uint256(1)));
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TaskInitialize(expected, workerpool);
        bytes32 taskid = hub.initialize(dealid, 1);
        vm.assertEq(taskid, expected, "PoCo task id");
        vm.assertEq(hub.taskIdOf(dealid, 1), expected, "taskIdOf");
        PocoTypes.Task memory t = hub.viewTask(taskid);
        vm.assertTrue(t.status == PocoTypes.TaskStatusEnum.ACTIVE, "active");
        vm.assertEq(t.dealid, dealid, "deal");
        vm.assertEq(t.idx, 1, "idx");
        vm.assertEq(t.timeref, TIMEREF, "timeref");
        vm.assertEq(t.contributionDeadline, block.timestamp + 7 * TIMEREF, "contribution deadline");
        vm.assertEq(t.finalDeadline, block.timestamp + 10 * TIMEREF, "final deadline");
        vm.assertEq(t.contributors.length, 0, "no contributor yet");
    }

    function test_initialize_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.UnknownDeal.selector, bytes32(0)));
        hub.initialize(bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskIndexOutOfDeal.selector, dealid, 3));
        hub.initialize(dealid, 3);
        bytes32 taskid = hub.initialize(dealid, 0);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskNotActive.selector, taskid));
        hub.initialize(dealid, 0);
    }

    function test_contributeAndFinalize_completesAndPays() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes32 resultHash = keccak256(abi.encodePacked(taskid, DIGEST));
        uint256 workerReward = WORKERPOOL_PRICE * 99 / 100;
        uint256 schedulerReward = WORKERPOOL_PRICE - workerReward;
        uint256 schedulerFree = hub.balanceOf(scheduler);
        uint256 requesterFrozen = hub.frozenOf(requester);

        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TaskContribute(taskid, worker, resultHash);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TaskConsensus(taskid, resultHash);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TaskReveal(taskid, worker, DIGEST);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TaskFinalize(taskid, "ipfs://result");
        contribute(taskid, DIGEST);

        PocoTypes.Task memory t = hub.viewTask(taskid);
        vm.assertTrue(t.status == PocoTypes.TaskStatusEnum.COMPLETED, "completed");
        vm.assertEq(t.consensusValue, resultHash, "consensus = resultHash");
        vm.assertEq(t.resultDigest, DIGEST, "digest");
        vm.assertEq(t.results, bytes("ipfs://result"), "results");
        vm.assertEq(t.contributors.length, 1, "one contributor");
        vm.assertEq(t.contributors[0], worker, "worker");
        vm.assertEq(t.resultsTimestamp, block.timestamp, "timestamp");
        vm.assertEq(t.revealDeadline, block.timestamp + 2 * TIMEREF, "reveal deadline");
        vm.assertEq(t.revealCounter, 1, "reveal counter");
        vm.assertEq(t.winnerCounter, 1, "winner counter");
        vm.assertEq(hub.resultFor(taskid), bytes(""), "no callback data");

        vm.assertEq(hub.balanceOf(appOwner), APP_PRICE, "app owner paid");
        vm.assertEq(hub.balanceOf(datasetOwner), DATASET_PRICE, "dataset owner paid");
        vm.assertEq(hub.balanceOf(worker), workerReward, "worker paid");
        vm.assertEq(
            hub.balanceOf(scheduler), schedulerFree + schedulerReward + WORKERPOOL_PRICE * 30 / 100, "scheduler"
        );
        vm.assertEq(hub.frozenOf(requester), requesterFrozen - (APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE), "seized");
    }

    function test_contributeAndFinalize_twiceReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        contribute(taskid, DIGEST);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskNotActive.selector, taskid));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_uninitializedReverts() public {
        bytes32 taskid = hub.taskIdOf(dealid, 2);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskNotActive.selector, taskid));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_afterDeadlineReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        uint256 deadline = block.timestamp + 7 * TIMEREF;
        vm.warp(deadline);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.ContributionDeadlinePassed.selector, deadline));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_needsEnclaveChallenge() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory auth = authorization(worker, taskid, address(0));
        vm.prank(worker);
        vm.expectRevert(IPocoHubErrors.EnclaveChallengeRequired.selector);
        hub.contributeAndFinalize(taskid, DIGEST, "", "", address(0), "", auth);
    }

    function test_contributeAndFinalize_callbackDataWithoutCallbackReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(IPocoHubErrors.InvalidResultsCallback.selector);
        hub.contributeAndFinalize(taskid, DIGEST, "", "not the digest", enclave, esig, auth);
    }

    function test_contributeAndFinalize_authorizationForOtherWorkerReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory auth = authorization(address(0xB0B), taskid, enclave); // scheduler chose Bob
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidAuthorization.selector, scheduler));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_wrongEnclaveReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory auth = authorization(worker, taskid, enclave);
        // a different key signs the result (not the enclave the SMS released)
        bytes memory esig = enclaveSignature(WORKER_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidEnclaveSignature.selector, enclave));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_digestTamperedReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidEnclaveSignature.selector, enclave));
        hub.contributeAndFinalize(taskid, keccak256("other result"), "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_sealBindsWorker() public {
        // The enclave signed for `worker`; another sender replaying it fails the seal.
        bytes32 taskid = hub.initialize(dealid, 0);
        address thief = address(0x7E1F);
        bytes memory auth = authorization(thief, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(thief);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidEnclaveSignature.selector, enclave));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
    }

    function test_contributeAndFinalize_rejectsHighS() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes32 message = keccak256(abi.encodePacked(worker, taskid, enclave));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(SCHEDULER_KEY, keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", message)));
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes memory malleable = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidAuthorization.selector, scheduler));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, malleable);
        // v as 0/1 is accepted like 27/28
        bytes memory lowV = abi.encodePacked(r, s, v - 27);
        vm.prank(worker);
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, lowV);
    }

    function test_teeBroker_replacesScheduler() public {
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TeeBrokerChanged(address(0), broker);
        hub.setTeeBroker(broker);
        vm.assertEq(hub.teebroker(), broker, "broker");
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        bytes memory schedulerAuth = authorization(worker, taskid, enclave);
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidAuthorization.selector, broker));
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, schedulerAuth);
        bytes memory brokerAuth = signEthMessage(BROKER_KEY, keccak256(abi.encodePacked(worker, taskid, enclave)));
        vm.prank(worker);
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, brokerAuth);
    }

    function test_admin_onlyOwner() public {
        vm.startPrank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.NotOwner.selector, worker));
        hub.setTeeBroker(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.NotOwner.selector, worker));
        hub.createCategory("x", "y", 1);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.NotOwner.selector, worker));
        hub.transferOwnership(worker);
        vm.stopPrank();
        vm.expectRevert(IPocoHubErrors.ZeroAddress.selector);
        hub.transferOwnership(address(0));
        hub.transferOwnership(worker);
        vm.assertEq(hub.owner(), worker, "new owner");
    }

    function test_categories() public {
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.CreateCategory(1, "XL", "long jobs", 3600);
        uint256 catid = hub.createCategory("XL", "long jobs", 3600);
        vm.assertEq(catid, 1, "index");
        vm.assertEq(hub.countCategory(), 2, "count");
        PocoTypes.Category memory c = hub.viewCategory(1);
        vm.assertEq(c.name, "XL", "name");
        vm.assertEq(c.description, "long jobs", "description");
        vm.assertEq(c.workClockTimeRef, 3600, "timeref");
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.UnknownCategory.selector, 2));
        hub.viewCategory(2);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.AmountTooLarge.selector, 0));
        hub.createCategory("zero", "", 0);
        uint256 tooLong = uint256(type(uint32).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.AmountTooLarge.selector, tooLong));
        hub.createCategory("long", "", tooLong);
    }

    function test_claim_refundsAndSeizesStake() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        uint256 finalDeadline = block.timestamp + 10 * TIMEREF;
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.FinalDeadlineNotReached.selector, finalDeadline));
        hub.claim(taskid);
        vm.warp(finalDeadline);
        uint256 requesterFree = hub.balanceOf(requester);
        uint256 schedulerFrozen = hub.frozenOf(scheduler);
        uint256 stake = WORKERPOOL_PRICE * 30 / 100;
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.TaskClaimed(taskid);
        hub.claim(taskid);
        vm.assertTrue(hub.viewTask(taskid).status == PocoTypes.TaskStatusEnum.FAILED, "failed");
        vm.assertEq(hub.balanceOf(requester), requesterFree + APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE, "refund");
        vm.assertEq(hub.frozenOf(scheduler), schedulerFrozen - stake, "stake seized");
        vm.assertEq(hub.frozenOf(hub.KITTY_ADDRESS()), stake, "kitty");
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskNotActive.selector, taskid));
        hub.claim(taskid);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskNotActive.selector, taskid));
        hub.resultFor(taskid);
    }

    function test_claim_completedTaskReverts() public {
        bytes32 taskid = hub.initialize(dealid, 0);
        contribute(taskid, DIGEST);
        vm.warp(block.timestamp + 10 * TIMEREF);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.TaskNotActive.selector, taskid));
        hub.claim(taskid);
    }

    function test_kitty_rewardsNextSuccessfulScheduler() public {
        bytes32 failed = hub.initialize(dealid, 0);
        bytes32 good = hub.initialize(dealid, 1);
        vm.warp(block.timestamp + 10 * TIMEREF);
        hub.claim(failed);
        uint256 kitty = hub.frozenOf(hub.KITTY_ADDRESS());
        vm.assertEq(kitty, 3e9, "kitty holds the seized stake");
        // a fresh deal whose task succeeds earns max(10% of kitty, KITTY_MIN) capped by the kitty
        bytes32 next = matchDefault(1);
        bytes32 taskid = hub.initialize(next, 0);
        uint256 before = hub.balanceOf(scheduler);
        contribute(taskid, DIGEST);
        uint256 share = 1e9; // 10% of 3e9 is below KITTY_MIN
        uint256 expected =
            before + (WORKERPOOL_PRICE - WORKERPOOL_PRICE * 99 / 100) + WORKERPOOL_PRICE * 30 / 100 + share;
        vm.assertEq(hub.balanceOf(scheduler), expected, "scheduler got kitty share");
        vm.assertEq(hub.frozenOf(hub.KITTY_ADDRESS()), kitty - share, "kitty shrank");
        good;
    }

    function test_callback_receivesResultAndFailureDoesNotBlock() public {
        RecordingConsumer consumer = new RecordingConsumer();
        bytes memory data = abi.encode(uint256(42));
        bytes32 digest = keccak256(data);
        bytes32 d = _dealWithCallback(address(consumer));
        bytes32 taskid = hub.initialize(d, 0);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, digest);
        vm.prank(worker);
        vm.expectRevert(IPocoHubErrors.InvalidResultsCallback.selector);
        hub.contributeAndFinalize(taskid, digest, "", "", enclave, esig, auth); // data required
        vm.prank(worker);
        hub.contributeAndFinalize(taskid, digest, "", data, enclave, esig, auth);
        vm.assertEq(consumer.lastId(), taskid, "callback id");
        vm.assertEq(consumer.lastResult(), data, "callback data");
        vm.assertEq(hub.resultFor(taskid), data, "resultFor");

        RevertingConsumer broken = new RevertingConsumer();
        bytes32 d2 = _dealWithCallback(address(broken));
        bytes32 t2 = hub.initialize(d2, 0);
        auth = authorization(worker, t2, enclave);
        esig = enclaveSignature(ENCLAVE_KEY, worker, t2, digest);
        vm.prank(worker);
        hub.contributeAndFinalize(t2, digest, "", data, enclave, esig, auth);
        vm.assertTrue(hub.viewTask(t2).status == PocoTypes.TaskStatusEnum.COMPLETED, "completed anyway");
    }

    function test_callback_insufficientGasReverts() public {
        RecordingConsumer consumer = new RecordingConsumer();
        bytes memory data = abi.encode(uint256(1));
        bytes32 digest = keccak256(data);
        bytes32 d = _dealWithCallback(address(consumer));
        bytes32 taskid = hub.initialize(d, 0);
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, digest);
        vm.prank(worker);
        vm.expectRevert(IPocoHubErrors.InsufficientGasForCallback.selector);
        hub.contributeAndFinalize{gas: 250_000}(taskid, digest, "", data, enclave, esig, auth);
    }

    function test_claim_freeDealMovesNothing() public {
        PocoOrders.AppOrder memory a = appOrder(1);
        PocoOrders.DatasetOrder memory d = datasetOrder(1);
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(1);
        PocoOrders.RequestOrder memory r = requestOrder(1);
        (a.appprice, d.datasetprice, w.workerpoolprice) = (0, 0, 0);
        resignApp(a);
        resignDataset(d);
        resignWorkerpool(w);
        bytes32 free = hub.matchOrders(a, d, w, r);
        bytes32 taskid = hub.initialize(free, 0);
        vm.warp(block.timestamp + 10 * TIMEREF);
        uint256 requesterFree = hub.balanceOf(requester);
        hub.claim(taskid);
        vm.assertEq(hub.balanceOf(requester), requesterFree, "nothing to refund");
        vm.assertEq(hub.frozenOf(hub.KITTY_ADDRESS()), 0, "no stake to seize");
    }

    function test_callback_dataMustHashToDigest() public {
        RecordingConsumer consumer = new RecordingConsumer();
        bytes32 d = _dealWithCallback(address(consumer));
        bytes32 taskid = hub.initialize(d, 0);
        bytes32 digest = keccak256("digest");
        bytes memory auth = authorization(worker, taskid, enclave);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, digest);
        vm.prank(worker);
        vm.expectRevert(IPocoHubErrors.InvalidResultsCallback.selector);
        hub.contributeAndFinalize(taskid, digest, "", "data of another result", enclave, esig, auth);
    }

    function _dealWithCallback(address callback) internal returns (bytes32) {
        PocoOrders.AppOrder memory a = appOrder(1);
        PocoOrders.DatasetOrder memory d = datasetOrder(1);
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(1);
        PocoOrders.RequestOrder memory r = requestOrder(1);
        r.callback = callback;
        r.salt = keccak256(abi.encode(callback));
        a.salt = r.salt;
        d.salt = r.salt;
        w.salt = r.salt;
        resignApp(a);
        resignDataset(d);
        resignWorkerpool(w);
        resignRequest(r);
        return hub.matchOrders(a, d, w, r);
    }

    /// Fuzz: any enclave key the scheduler authorized finalizes; any other key is refused.
    function testFuzz_enclaveSignatures(bool honest, uint256 signingKey, bytes32 digest) public {
        signingKey = honest
            ? ENCLAVE_KEY
            : bound(signingKey, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        address challenge = vm.addr(ENCLAVE_KEY);
        bytes32 taskid = hub.initialize(dealid, 0);
        bytes memory auth = authorization(worker, taskid, challenge);
        bytes memory esig = enclaveSignature(signingKey, worker, taskid, digest);
        vm.prank(worker);
        if (signingKey != ENCLAVE_KEY) {
            vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidEnclaveSignature.selector, challenge));
        }
        hub.contributeAndFinalize(taskid, digest, "", "", challenge, esig, auth);
        if (signingKey == ENCLAVE_KEY) vm.assertEq(hub.viewTask(taskid).resultDigest, digest, "finalized");
    }

    /// Fuzz: the scheduler's authorization binds worker, task and enclave; changing any refuses.
    function testFuzz_authorizationBindsAllThree(uint8 swaps, address other, bytes32 otherSubject) public {
        bytes32 taskid = hub.initialize(dealid, 0);
        vm.assume(other != worker && other != enclave && other != address(0) && otherSubject != taskid);
        address who = swaps & 1 != 0 ? other : worker;
        bytes32 subject = swaps & 2 != 0 ? otherSubject : taskid;
        address challenge = swaps & 4 != 0 ? other : enclave;
        bytes memory auth = authorization(who, subject, challenge);
        bytes memory esig = enclaveSignature(ENCLAVE_KEY, worker, taskid, DIGEST);
        vm.prank(worker);
        if (swaps & 7 != 0) {
            vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidAuthorization.selector, scheduler));
        }
        hub.contributeAndFinalize(taskid, DIGEST, "", "", enclave, esig, auth);
        if (swaps & 7 == 0) vm.assertEq(hub.balanceOf(worker), WORKERPOOL_PRICE * 99 / 100, "paid");
    }
}
