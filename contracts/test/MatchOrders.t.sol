// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {IPocoHubErrors, IPocoHubEvents, PocoTypes} from "../src/hub/IPocoHub.sol";
import {PocoOrders} from "../src/libs/PocoOrders.sol";

contract MatchOrdersTest is HubFixture {
    struct Orders {
        PocoOrders.AppOrder a;
        PocoOrders.DatasetOrder d;
        PocoOrders.WorkerpoolOrder w;
        PocoOrders.RequestOrder r;
    }

    function orders(uint256 volume) internal view returns (Orders memory o) {
        o.a = appOrder(volume);
        o.d = datasetOrder(volume);
        o.w = workerpoolOrder(volume);
        o.r = requestOrder(volume);
    }

    function resign(Orders memory o) internal view {
        resignApp(o.a);
        if (o.d.dataset != address(0)) resignDataset(o.d);
        resignWorkerpool(o.w);
        resignRequest(o.r);
    }

    function expectMatchRevert(Orders memory o, bytes memory err) internal {
        resign(o);
        vm.expectRevert(err);
        hub.matchOrders(o.a, o.d, o.w, o.r);
    }

    function test_match_createsPocoDealAndLocksFunds() public {
        Orders memory o = orders(3);
        bytes32 requestHash = typedHash(hasher.request(o.r));
        bytes32 expectedDeal = keccak256(abi.encodePacked(requestHash, uint256(0)));
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.SchedulerNotice(workerpool, expectedDeal);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.OrdersMatched(
            expectedDeal,
            typedHash(hasher.app(o.a)),
            typedHash(hasher.dataset(o.d)),
            typedHash(hasher.workerpool(o.w)),
            requestHash,
            3
        );
        bytes32 dealid = hub.matchOrders(o.a, o.d, o.w, o.r);
        vm.assertEq(dealid, expectedDeal, "PoCo deal id");

        PocoTypes.Deal memory deal = hub.viewDeal(dealid);
        vm.assertEq(deal.app.pointer, app, "app");
        vm.assertEq(deal.app.owner, appOwner, "app owner");
        vm.assertEq(deal.app.price, APP_PRICE, "app price");
        vm.assertEq(deal.dataset.pointer, dataset, "dataset");
        vm.assertEq(deal.dataset.owner, datasetOwner, "dataset owner");
        vm.assertEq(deal.dataset.price, DATASET_PRICE, "dataset price");
        vm.assertEq(deal.workerpool.pointer, workerpool, "workerpool");
        vm.assertEq(deal.workerpool.owner, scheduler, "scheduler");
        vm.assertEq(deal.workerpool.price, WORKERPOOL_PRICE, "workerpool price");
        vm.assertEq(deal.trust, 1, "trust");
        vm.assertEq(deal.category, 0, "category");
        vm.assertEq(deal.tag, TEE_TAG, "tag");
        vm.assertEq(deal.requester, requester, "requester");
        vm.assertEq(deal.beneficiary, requester, "beneficiary");
        vm.assertEq(deal.callback, address(0), "callback");
        vm.assertEq(deal.params, o.r.params, "params");
        vm.assertEq(deal.startTime, block.timestamp, "start");
        vm.assertEq(deal.botFirst, 0, "botFirst");
        vm.assertEq(deal.botSize, 3, "botSize");
        vm.assertEq(deal.workerStake, WORKERPOOL_PRICE * 30 / 100, "worker stake");
        vm.assertEq(deal.schedulerRewardRatio, 1, "scheduler ratio");
        vm.assertEq(deal.sponsor, requester, "sponsor");

        vm.assertEq(hub.frozenOf(requester), 3 * (APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE), "requester lock");
        vm.assertEq(hub.frozenOf(scheduler), 3 * (WORKERPOOL_PRICE * 30 / 100), "scheduler stake");
        vm.assertEq(hub.viewConsumed(requestHash), 3, "request consumed");
        vm.assertEq(hub.viewConsumed(typedHash(hasher.app(o.a))), 3, "app consumed");
    }

    function test_match_partialVolumeThenSecondDeal() public {
        Orders memory o = orders(10);
        o.w.volume = 4;
        resign(o);
        bytes32 first = hub.matchOrders(o.a, o.d, o.w, o.r);
        vm.assertEq(hub.viewDeal(first).botSize, 4, "limited by workerpool volume");
        Orders memory o2 = orders(10);
        o2.w.salt = keccak256("another workerpool order");
        resign(o2);
        bytes32 second = hub.matchOrders(o2.a, o2.d, o2.w, o2.r);
        bytes32 requestHash = typedHash(hasher.request(o.r));
        vm.assertEq(second, keccak256(abi.encodePacked(requestHash, uint256(4))), "second deal id");
        PocoTypes.Deal memory deal = hub.viewDeal(second);
        vm.assertEq(deal.botFirst, 4, "continues at 4");
        vm.assertEq(deal.botSize, 6, "rest of the request");
    }

    function test_match_withoutDataset() public {
        Orders memory o = orders(1);
        o.d = PocoOrders.DatasetOrder(address(0), 0, 0, bytes32(0), address(0), address(0), address(0), 0, "");
        o.r.dataset = address(0);
        o.r.datasetmaxprice = 0;
        resign(o);
        bytes32 dealid = hub.matchOrders(o.a, o.d, o.w, o.r);
        PocoTypes.Deal memory deal = hub.viewDeal(dealid);
        vm.assertEq(deal.dataset.pointer, address(0), "no dataset");
        vm.assertEq(deal.dataset.price, 0, "no dataset price");
        vm.assertEq(hub.frozenOf(requester), APP_PRICE + WORKERPOOL_PRICE, "lock without dataset");
    }

    function test_revert_categoryMismatch() public {
        Orders memory o = orders(1);
        o.w.category = 1;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.CategoryMismatch.selector, 0, 1));
    }

    function test_revert_unknownCategory() public {
        Orders memory o = orders(1);
        o.w.category = 5;
        o.r.category = 5;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.UnknownCategory.selector, 5));
    }

    function test_revert_trustNotOffered() public {
        Orders memory o = orders(1);
        o.w.trust = 0;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.TrustNotOffered.selector, 1, 0));
    }

    function test_revert_unsupportedTrust() public {
        Orders memory o = orders(1);
        o.w.trust = 5;
        o.r.trust = 3;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.UnsupportedTrust.selector, 3));
    }

    function test_revert_prices() public {
        Orders memory o = orders(1);
        o.a.appprice = APP_PRICE + 1;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.AppPriceTooHigh.selector, APP_PRICE + 1, APP_PRICE));
        o = orders(1);
        o.d.datasetprice = DATASET_PRICE + 1;
        expectMatchRevert(
            o, abi.encodeWithSelector(IPocoHubErrors.DatasetPriceTooHigh.selector, DATASET_PRICE + 1, DATASET_PRICE)
        );
        o = orders(1);
        o.w.workerpoolprice = WORKERPOOL_PRICE + 1;
        expectMatchRevert(
            o,
            abi.encodeWithSelector(
                IPocoHubErrors.WorkerpoolPriceTooHigh.selector, WORKERPOOL_PRICE + 1, WORKERPOOL_PRICE
            )
        );
    }

    function test_revert_tagNotSupportedByWorkerpool() public {
        Orders memory o = orders(1);
        o.r.tag = bytes32(uint256(0x103));
        expectMatchRevert(
            o,
            abi.encodeWithSelector(
                IPocoHubErrors.TagNotSupportedByWorkerpool.selector, bytes32(uint256(0x103)), TEE_TAG
            )
        );
    }

    function test_revert_teeBitNotDeclaredByApp() public {
        Orders memory o = orders(1);
        o.a.tag = bytes32(uint256(0x2));
        expectMatchRevert(
            o, abi.encodeWithSelector(IPocoHubErrors.TeeTagNotDeclaredByApp.selector, TEE_TAG, bytes32(uint256(0x2)))
        );
    }

    function test_revert_teeRequired() public {
        Orders memory o = orders(1);
        o.a.tag = 0;
        o.d.tag = 0;
        o.r.tag = 0;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.TeeRequired.selector, bytes32(0)));
    }

    function test_datasetTeeFrameworkBitsIgnored() public {
        // A dataset tagged for Scone (0x3) may run on a TDX-only pool (0x9): PoCo masks 0x0E.
        Orders memory o = orders(1);
        o.a.tag = bytes32(uint256(0x9));
        o.w.tag = bytes32(uint256(0x9));
        o.r.tag = bytes32(uint256(0x1));
        o.d.tag = bytes32(uint256(0x3));
        resign(o);
        bytes32 dealid = hub.matchOrders(o.a, o.d, o.w, o.r);
        vm.assertEq(hub.viewDeal(dealid).tag, bytes32(uint256(0x9)), "deal tag");
    }

    function test_revert_appAndDatasetMismatch() public {
        Orders memory o = orders(1);
        o.r.app = address(0xAA);
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.AppMismatch.selector, address(0xAA), app));
        o = orders(1);
        o.r.dataset = address(0xDD);
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.DatasetMismatch.selector, address(0xDD), dataset));
    }

    function test_revert_everyRestriction() public {
        address x = address(0xBAD);
        Orders memory o;
        o = orders(1);
        o.r.workerpool = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x12, x, workerpool));
        o = orders(1);
        o.a.datasetrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x13, x, dataset));
        o = orders(1);
        o.a.workerpoolrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x14, x, workerpool));
        o = orders(1);
        o.a.requesterrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x15, x, requester));
        o = orders(1);
        o.d.apprestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x16, x, app));
        o = orders(1);
        o.d.workerpoolrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x17, x, workerpool));
        o = orders(1);
        o.d.requesterrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x18, x, requester));
        o = orders(1);
        o.w.apprestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x19, x, app));
        o = orders(1);
        o.w.datasetrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x1a, x, dataset));
        o = orders(1);
        o.w.requesterrestrict = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.RestrictionViolated.selector, 0x1b, x, requester));
    }

    function test_exactRestrictionsMatch() public {
        Orders memory o = orders(1);
        o.r.workerpool = workerpool;
        o.a.datasetrestrict = dataset;
        o.a.workerpoolrestrict = workerpool;
        o.a.requesterrestrict = requester;
        o.d.apprestrict = app;
        o.d.workerpoolrestrict = workerpool;
        o.d.requesterrestrict = requester;
        o.w.apprestrict = app;
        o.w.datasetrestrict = dataset;
        o.w.requesterrestrict = requester;
        resign(o);
        hub.matchOrders(o.a, o.d, o.w, o.r);
    }

    function test_revert_unregisteredEntries() public {
        address x = address(0xBAD);
        Orders memory o = orders(1);
        o.a.app = x;
        o.r.app = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.AppNotRegistered.selector, x));
        o = orders(1);
        o.d.dataset = x;
        o.r.dataset = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.DatasetNotRegistered.selector, x));
        o = orders(1);
        o.w.workerpool = x;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.WorkerpoolNotRegistered.selector, x));
    }

    function test_revert_badSignatures() public {
        Orders memory o = orders(1);
        resign(o);
        o.a.sign = signDigest(WORKER_KEY, typedHash(hasher.app(o.a)));
        vm.expectRevert(
            abi.encodeWithSelector(IPocoHubErrors.InvalidOrderSignature.selector, typedHash(hasher.app(o.a)), appOwner)
        );
        hub.matchOrders(o.a, o.d, o.w, o.r);

        o = orders(1);
        o.d.sign = "";
        vm.expectRevert(
            abi.encodeWithSelector(
                IPocoHubErrors.InvalidOrderSignature.selector, typedHash(hasher.dataset(o.d)), datasetOwner
            )
        );
        hub.matchOrders(o.a, o.d, o.w, o.r);

        o = orders(1);
        o.w.sign = hex"00";
        vm.expectRevert(
            abi.encodeWithSelector(
                IPocoHubErrors.InvalidOrderSignature.selector, typedHash(hasher.workerpool(o.w)), scheduler
            )
        );
        hub.matchOrders(o.a, o.d, o.w, o.r);

        o = orders(1);
        o.r.volume = 2; // signed for volume 1: the digest no longer matches
        vm.expectRevert(
            abi.encodeWithSelector(
                IPocoHubErrors.InvalidOrderSignature.selector, typedHash(hasher.request(o.r)), requester
            )
        );
        hub.matchOrders(o.a, o.d, o.w, o.r);
    }

    function test_revert_insufficientFunds() public {
        Orders memory o = orders(1);
        o.r.requester = worker; // worker has no deposit
        o.r.sign = signDigest(WORKER_KEY, typedHash(hasher.request(o.r)));
        uint256 price = APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE;
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InsufficientBalance.selector, worker, 0, price));
        hub.matchOrders(o.a, o.d, o.w, o.r);
    }

    function test_revert_pricesAboveUint96() public {
        Orders memory o = orders(1);
        uint256 huge = uint256(type(uint96).max) + 1;
        o.a.appprice = huge;
        o.r.appmaxprice = huge;
        expectMatchRevert(
            o, abi.encodeWithSelector(IPocoHubErrors.AmountTooLarge.selector, huge + DATASET_PRICE + WORKERPOOL_PRICE)
        );
    }

    function test_revert_volumeAboveUint64() public {
        Orders memory o = orders(1);
        uint256 huge = uint256(type(uint64).max) + 1;
        o.a.volume = huge;
        o.d.volume = huge;
        o.w.volume = huge;
        o.r.volume = huge;
        o.a.appprice = 0;
        o.d.datasetprice = 0;
        o.w.workerpoolprice = 0;
        expectMatchRevert(o, abi.encodeWithSelector(IPocoHubErrors.AmountTooLarge.selector, huge));
    }

    /// Fuzz: prices and volumes either match into a deal with the minimum volume and exact locks,
    /// or revert for the price that exceeds its maximum.
    function testFuzz_match_pricesAndVolumes(
        uint64 appPrice,
        uint64 appMax,
        uint64 wpPrice,
        uint64 wpMax,
        uint16 va,
        uint16 vd,
        uint16 vw,
        uint16 vr
    ) public {
        fund(requester, 1e25);
        fund(scheduler, 1e25);
        Orders memory o = orders(1);
        o.a.appprice = appPrice;
        o.r.appmaxprice = appMax;
        o.w.workerpoolprice = wpPrice;
        o.r.workerpoolmaxprice = wpMax;
        o.a.volume = bound(va, 1, 500);
        o.d.volume = bound(vd, 1, 500);
        o.w.volume = bound(vw, 1, 500);
        o.r.volume = bound(vr, 1, 500);
        resign(o);
        if (appPrice > appMax) {
            vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.AppPriceTooHigh.selector, appPrice, appMax));
            hub.matchOrders(o.a, o.d, o.w, o.r);
            return;
        }
        if (wpPrice > wpMax) {
            vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.WorkerpoolPriceTooHigh.selector, wpPrice, wpMax));
            hub.matchOrders(o.a, o.d, o.w, o.r);
            return;
        }
        bytes32 dealid = hub.matchOrders(o.a, o.d, o.w, o.r);
        uint256 volume = o.a.volume;
        if (o.d.volume < volume) volume = o.d.volume;
        if (o.w.volume < volume) volume = o.w.volume;
        if (o.r.volume < volume) volume = o.r.volume;
        vm.assertEq(hub.viewDeal(dealid).botSize, volume, "minimum volume");
        uint256 taskPrice = uint256(appPrice) + DATASET_PRICE + wpPrice;
        vm.assertEq(hub.frozenOf(requester), taskPrice * volume, "requester lock");
        vm.assertEq(hub.frozenOf(scheduler), (uint256(wpPrice) * 30 / 100) * volume, "stake lock");
        vm.assertEq(hub.balanceOf(requester), 1e25 + 1e15 - taskPrice * volume, "requester free");
    }

    /// Fuzz: PoCo's tag rules. The workerpool must cover every requested bit, and the TEE bit of
    /// the combined tag must come from the app order.
    function testFuzz_match_tagRules(uint8 appBits, uint8 datasetBits, uint8 requestBits, uint8 poolBits) public {
        // Small bit sets (bits 0-3 and 8) so that matches and each refusal all happen often.
        bytes32 appTag = bytes32(uint256(appBits & 0x0F) | (uint256(appBits & 0x10) << 4));
        bytes32 datasetTag = bytes32(uint256(datasetBits & 0x0F) | (uint256(datasetBits & 0x10) << 4));
        bytes32 requestTag = bytes32(uint256(requestBits & 0x0F) | (uint256(requestBits & 0x10) << 4));
        bytes32 poolTag = bytes32(uint256(poolBits & 0x0F) | (uint256(poolBits & 0x10) << 4));
        Orders memory o = orders(1);
        o.a.tag = appTag;
        o.d.tag = datasetTag;
        o.r.tag = requestTag;
        o.w.tag = poolTag;
        resign(o);
        bytes32 tag = appTag | (datasetTag & ~bytes32(uint256(0x0E))) | requestTag;
        bool ok = tag & ~poolTag == 0 && (tag ^ appTag) & bytes32(uint256(1)) == 0 && tag & bytes32(uint256(1)) != 0;
        if (!ok) vm.expectRevert();
        bytes32 dealid = hub.matchOrders(o.a, o.d, o.w, o.r);
        if (ok) vm.assertEq(hub.viewDeal(dealid).tag, tag, "deal tag");
    }

    /// Fuzz: only the named signer's signature (or presignature) is accepted.
    function testFuzz_match_rejectsForeignSigners(uint256 key) public {
        key = bound(key, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        vm.assume(key != REQUESTER_KEY);
        Orders memory o = orders(1);
        o.r.sign = signDigest(key, typedHash(hasher.request(o.r)));
        vm.expectRevert(
            abi.encodeWithSelector(
                IPocoHubErrors.InvalidOrderSignature.selector, typedHash(hasher.request(o.r)), requester
            )
        );
        hub.matchOrders(o.a, o.d, o.w, o.r);
    }
}
