// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {IPocoHubErrors, IPocoHubEvents} from "../src/hub/IPocoHub.sol";
import {PocoOrders} from "../src/libs/PocoOrders.sol";
import {EntryRegistry} from "../src/registries/EntryRegistry.sol";

contract OrderBookTest is HubFixture {
    function test_domainSeparator_isPocoDomain() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("iExecODB"),
                keccak256("5.0.0"),
                block.chainid,
                address(hub)
            )
        );
        vm.assertEq(hub.eip712domain_separator(), expected, "domain");
    }

    function test_typeHashes_arePocoStrings() public view {
        PocoOrders.AppOrder memory o = appOrder(1);
        bytes32 expected = keccak256(
            abi.encode(
                keccak256(
                    "AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
                ),
                o.app,
                o.appprice,
                o.volume,
                o.tag,
                o.datasetrestrict,
                o.workerpoolrestrict,
                o.requesterrestrict,
                o.salt
            )
        );
        vm.assertEq(hasher.app(o), expected, "app order struct hash");
    }

    function test_manageAppOrder_ownerPresignsThenCloses() public {
        PocoOrders.AppOrder memory o = appOrder(5);
        bytes32 h = typedHash(hasher.app(o));
        PocoOrders.AppOrderOperation memory op = PocoOrders.AppOrderOperation(o, PocoOrders.OrderOperationEnum.SIGN, "");
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.SignedAppOrder(h);
        vm.prank(appOwner);
        hub.manageAppOrder(op);
        vm.assertEq(hub.viewPresigned(h), appOwner, "presigned");

        op.operation = PocoOrders.OrderOperationEnum.CLOSE;
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.ClosedAppOrder(h);
        vm.prank(appOwner);
        hub.manageAppOrder(op);
        vm.assertEq(hub.viewConsumed(h), 5, "closed");
    }

    function test_manageOrder_bySignedOperation() public {
        PocoOrders.DatasetOrder memory o = datasetOrder(3);
        PocoOrders.DatasetOrderOperation memory op =
            PocoOrders.DatasetOrderOperation(o, PocoOrders.OrderOperationEnum.CLOSE, "");
        op.sign = signDigest(DATASET_OWNER_KEY, typedHash(hasher.datasetOp(op)));
        bytes32 h = typedHash(hasher.dataset(o));
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.ClosedDatasetOrder(h);
        hub.manageDatasetOrder(op); // relayed by anyone
        vm.assertEq(hub.viewConsumed(h), 3, "closed");
    }

    function test_manageWorkerpoolAndRequestOrders() public {
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(2);
        PocoOrders.WorkerpoolOrderOperation memory wop =
            PocoOrders.WorkerpoolOrderOperation(w, PocoOrders.OrderOperationEnum.SIGN, "");
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.SignedWorkerpoolOrder(typedHash(hasher.workerpool(w)));
        vm.prank(scheduler);
        hub.manageWorkerpoolOrder(wop);
        wop.operation = PocoOrders.OrderOperationEnum.CLOSE;
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.ClosedWorkerpoolOrder(typedHash(hasher.workerpool(w)));
        vm.prank(scheduler);
        hub.manageWorkerpoolOrder(wop);

        PocoOrders.RequestOrder memory r = requestOrder(2);
        PocoOrders.RequestOrderOperation memory rop =
            PocoOrders.RequestOrderOperation(r, PocoOrders.OrderOperationEnum.SIGN, "");
        rop.sign = signDigest(REQUESTER_KEY, typedHash(hasher.requestOp(rop)));
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.SignedRequestOrder(typedHash(hasher.request(r)));
        hub.manageRequestOrder(rop);
        rop.operation = PocoOrders.OrderOperationEnum.CLOSE;
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.ClosedRequestOrder(typedHash(hasher.request(r)));
        vm.prank(requester);
        hub.manageRequestOrder(rop);

        PocoOrders.DatasetOrderOperation memory dop =
            PocoOrders.DatasetOrderOperation(datasetOrder(1), PocoOrders.OrderOperationEnum.SIGN, "");
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.SignedDatasetOrder(typedHash(hasher.dataset(dop.order)));
        vm.prank(datasetOwner);
        hub.manageDatasetOrder(dop);
        PocoOrders.AppOrderOperation memory aop =
            PocoOrders.AppOrderOperation(appOrder(1), PocoOrders.OrderOperationEnum.CLOSE, "");
        aop.sign = signDigest(APP_OWNER_KEY, typedHash(hasher.appOp(aop)));
        hub.manageAppOrder(aop);
        vm.assertEq(hub.viewConsumed(typedHash(hasher.app(aop.order))), 1, "app closed by signature");
    }

    function test_manageOrder_strangerReverts() public {
        PocoOrders.AppOrderOperation memory op =
            PocoOrders.AppOrderOperation(appOrder(1), PocoOrders.OrderOperationEnum.SIGN, "");
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidSenderOrSignature.selector, appOwner, worker));
        hub.manageAppOrder(op);
        // a signature by someone else than the owner does not help either
        op.sign = signDigest(WORKER_KEY, typedHash(hasher.appOp(op)));
        vm.prank(worker);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InvalidSenderOrSignature.selector, appOwner, worker));
        hub.manageAppOrder(op);
    }

    function test_manageOrder_unregisteredEntryReverts() public {
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(1);
        w.workerpool = address(0x1234);
        PocoOrders.WorkerpoolOrderOperation memory op =
            PocoOrders.WorkerpoolOrderOperation(w, PocoOrders.OrderOperationEnum.SIGN, "");
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(0x1234)));
        hub.manageWorkerpoolOrder(op);
        PocoOrders.RequestOrder memory r = requestOrder(1);
        r.requester = address(0);
        PocoOrders.RequestOrderOperation memory rop =
            PocoOrders.RequestOrderOperation(r, PocoOrders.OrderOperationEnum.SIGN, "");
        vm.expectRevert(IPocoHubErrors.ZeroAddress.selector);
        hub.manageRequestOrder(rop);
    }

    function test_presignedOrders_match() public {
        PocoOrders.AppOrder memory a = appOrder(1);
        PocoOrders.DatasetOrder memory d = datasetOrder(1);
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(1);
        PocoOrders.RequestOrder memory r = requestOrder(1);
        a.sign = "";
        d.sign = "";
        w.sign = "";
        r.sign = "";
        vm.prank(appOwner);
        hub.manageAppOrder(PocoOrders.AppOrderOperation(a, PocoOrders.OrderOperationEnum.SIGN, ""));
        vm.prank(datasetOwner);
        hub.manageDatasetOrder(PocoOrders.DatasetOrderOperation(d, PocoOrders.OrderOperationEnum.SIGN, ""));
        vm.prank(scheduler);
        hub.manageWorkerpoolOrder(PocoOrders.WorkerpoolOrderOperation(w, PocoOrders.OrderOperationEnum.SIGN, ""));
        vm.prank(requester);
        hub.manageRequestOrder(PocoOrders.RequestOrderOperation(r, PocoOrders.OrderOperationEnum.SIGN, ""));
        bytes32 dealid = hub.matchOrders(a, d, w, r);
        vm.assertEq(hub.viewDeal(dealid).botSize, 1, "matched on presignatures");
    }

    function test_closedOrder_cannotMatch() public {
        PocoOrders.RequestOrder memory r = requestOrder(1);
        vm.prank(requester);
        hub.manageRequestOrder(PocoOrders.RequestOrderOperation(r, PocoOrders.OrderOperationEnum.CLOSE, ""));
        PocoOrders.AppOrder memory a = appOrder(1);
        PocoOrders.DatasetOrder memory d = datasetOrder(1);
        PocoOrders.WorkerpoolOrder memory w = workerpoolOrder(1);
        vm.expectRevert(IPocoHubErrors.NoVolumeLeft.selector);
        hub.matchOrders(a, d, w, r);
    }
}
