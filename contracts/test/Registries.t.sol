// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./utils/Vm.sol";
import {AppRegistry} from "../src/registries/AppRegistry.sol";
import {DatasetRegistry} from "../src/registries/DatasetRegistry.sol";
import {WorkerpoolRegistry} from "../src/registries/WorkerpoolRegistry.sol";
import {EntryRegistry, IERC721Receiver} from "../src/registries/EntryRegistry.sol";

contract AcceptingReceiver is IERC721Receiver {
    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return IERC721Receiver.onERC721Received.selector;
    }
}

contract RefusingReceiver is IERC721Receiver {
    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return bytes4(0xdeadbeef);
    }
}

contract RegistriesTest is TestBase {
    AppRegistry apps;
    DatasetRegistry datasets;
    WorkerpoolRegistry pools;
    address alice = address(0xA11CE);
    address bob = address(0xB0B);

    function setUp() public {
        apps = new AppRegistry();
        datasets = new DatasetRegistry();
        pools = new WorkerpoolRegistry();
    }

    function _app() internal returns (address) {
        return apps.createApp(alice, "pox-python", "DOCKER", "docker.io/pox/python", keccak256("img"), hex"abcd");
    }

    function test_createApp_registersTokenAndMetadata() public {
        address predicted =
            apps.predictApp(alice, "pox-python", "DOCKER", "docker.io/pox/python", keccak256("img"), hex"abcd");
        vm.expectEmit(address(apps));
        emit EntryRegistry.Transfer(address(0), alice, uint256(uint160(predicted)));
        address a = _app();
        vm.assertEq(a, predicted, "predictApp");
        vm.assertTrue(apps.isRegistered(a), "registered");
        vm.assertEq(apps.ownerOf(uint256(uint160(a))), alice, "owner");
        vm.assertEq(apps.ownerOfEntry(a), alice, "ownerOfEntry");
        vm.assertEq(apps.balanceOf(alice), 1, "balance");
        AppRegistry.AppInfo memory info = apps.viewApp(a);
        vm.assertEq(info.name, "pox-python", "name");
        vm.assertEq(info.appType, "DOCKER", "type");
        vm.assertEq(info.multiaddr, bytes("docker.io/pox/python"), "multiaddr");
        vm.assertEq(info.checksum, keccak256("img"), "checksum");
        vm.assertEq(info.mrenclave, hex"abcd", "mrenclave");
        vm.assertEq(apps.name(), "PoX Apps", "collection name");
        vm.assertEq(apps.symbol(), "POXAPP", "symbol");
        vm.assertEq(apps.tokenURI(uint256(uint160(a))), "", "tokenURI");
    }

    function test_createApp_twiceReverts() public {
        address a = _app();
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryAlreadyRegistered.selector, a));
        _app();
    }

    function test_create_zeroOwnerReverts() public {
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.InvalidOwner.selector, address(0)));
        datasets.createDataset(address(0), "d", "ipfs://d", bytes32(0));
    }

    function test_createDataset_andView() public {
        address d = datasets.createDataset(alice, "reads", "ipfs://reads", keccak256("r"));
        DatasetRegistry.DatasetInfo memory info = datasets.viewDataset(d);
        vm.assertEq(info.name, "reads", "name");
        vm.assertEq(info.multiaddr, bytes("ipfs://reads"), "multiaddr");
        vm.assertEq(info.checksum, keccak256("r"), "checksum");
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(1)));
        datasets.viewDataset(address(1));
    }

    function test_viewUnknownEntriesRevert() public {
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(7)));
        apps.viewApp(address(7));
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(7)));
        pools.viewWorkerpool(address(7));
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(7)));
        apps.ownerOf(7);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(7)));
        apps.getApproved(7);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.EntryNotRegistered.selector, address(7)));
        apps.tokenURI(7);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.InvalidOwner.selector, address(0)));
        apps.balanceOf(address(0));
    }

    function test_workerpool_defaultPolicyAndChange() public {
        address wp = pools.createWorkerpool(alice, "pool");
        (address owner, uint256 stakeRatio, uint256 rewardRatio) = pools.policyOf(wp);
        vm.assertEq(owner, alice, "owner");
        vm.assertEq(stakeRatio, 30, "default stake ratio");
        vm.assertEq(rewardRatio, 1, "default reward ratio");
        vm.expectEmit(address(pools));
        emit WorkerpoolRegistry.PolicyUpdate(wp, 30, 40, 1, 5);
        vm.prank(alice);
        pools.changePolicy(wp, 40, 5);
        WorkerpoolRegistry.WorkerpoolInfo memory info = pools.viewWorkerpool(wp);
        vm.assertEq(info.description, "pool", "description");
        vm.assertEq(info.workerStakeRatioPolicy, 40, "stake ratio");
        vm.assertEq(info.schedulerRewardRatioPolicy, 5, "reward ratio");
    }

    function test_changePolicy_onlyOwnerAndBounded() public {
        address wp = pools.createWorkerpool(alice, "pool");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.NotEntryOwner.selector, wp, bob));
        pools.changePolicy(wp, 1, 1);
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(WorkerpoolRegistry.RatioAbove100.selector, 101));
        pools.changePolicy(wp, 101, 1);
        vm.expectRevert(abi.encodeWithSelector(WorkerpoolRegistry.RatioAbove100.selector, 101));
        pools.changePolicy(wp, 1, 101);
        vm.stopPrank();
    }

    function test_transfer_movesOwnership() public {
        address a = _app();
        uint256 id = uint256(uint160(a));
        vm.prank(alice);
        apps.transferFrom(alice, bob, id);
        vm.assertEq(apps.ownerOfEntry(a), bob, "new owner");
        vm.assertEq(apps.balanceOf(alice), 0, "alice balance");
        vm.assertEq(apps.balanceOf(bob), 1, "bob balance");
    }

    function test_transfer_unauthorizedOrWrongFromOrZeroReverts() public {
        address a = _app();
        uint256 id = uint256(uint160(a));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.NotAuthorized.selector, bob, id));
        apps.transferFrom(alice, bob, id);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.WrongFrom.selector, bob, alice));
        apps.transferFrom(bob, alice, id);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.InvalidRecipient.selector, address(0)));
        apps.transferFrom(alice, address(0), id);
    }

    function test_approve_andOperator() public {
        address a = _app();
        uint256 id = uint256(uint160(a));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.NotAuthorized.selector, bob, id));
        apps.approve(bob, id);
        vm.prank(alice);
        apps.approve(bob, id);
        vm.assertEq(apps.getApproved(id), bob, "approved");
        vm.prank(bob);
        apps.transferFrom(alice, bob, id);
        vm.assertEq(apps.getApproved(id), address(0), "approval cleared");

        vm.prank(bob);
        apps.setApprovalForAll(alice, true);
        vm.assertTrue(apps.isApprovedForAll(bob, alice), "operator");
        vm.prank(alice);
        apps.approve(alice, id); // operator may approve
        vm.prank(alice);
        apps.transferFrom(bob, alice, id);
        vm.assertEq(apps.ownerOfEntry(a), alice, "operator transfer");
    }

    function test_safeTransfer_checksReceiver() public {
        address a = _app();
        uint256 id = uint256(uint160(a));
        AcceptingReceiver ok = new AcceptingReceiver();
        RefusingReceiver refusing = new RefusingReceiver();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.InvalidRecipient.selector, address(refusing)));
        apps.safeTransferFrom(alice, address(refusing), id);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(EntryRegistry.InvalidRecipient.selector, address(pools)));
        apps.safeTransferFrom(alice, address(pools), id); // no hook at all
        vm.prank(alice);
        apps.safeTransferFrom(alice, address(ok), id);
        vm.assertEq(apps.ownerOfEntry(a), address(ok), "contract owner");
        vm.prank(address(ok));
        apps.safeTransferFrom(address(ok), bob, id, "data");
        vm.assertEq(apps.ownerOfEntry(a), bob, "eoa owner");
    }

    function test_supportsInterface() public view {
        vm.assertTrue(apps.supportsInterface(0x80ac58cd), "erc721");
        vm.assertTrue(apps.supportsInterface(0x01ffc9a7), "erc165");
        vm.assertTrue(apps.supportsInterface(0x5b5e139f), "metadata");
        vm.assertFalse(apps.supportsInterface(0xffffffff), "none");
    }

    function testFuzz_entryAddressesAreDistinctPerOwnerAndArgs(address o1, address o2, bytes32 c1, bytes32 c2) public {
        vm.assume(o1 != address(0) && o2 != address(0));
        vm.assume(o1 != o2 || c1 != c2);
        address d1 = datasets.createDataset(o1, "d", "ipfs://d", c1);
        address d2 = datasets.createDataset(o2, "d", "ipfs://d", c2);
        vm.assertTrue(d1 != d2, "distinct");
        vm.assertEq(datasets.ownerOfEntry(d1), o1, "owner 1");
        vm.assertEq(datasets.ownerOfEntry(d2), o2, "owner 2");
    }
}
