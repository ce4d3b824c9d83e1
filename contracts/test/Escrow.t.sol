// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {IPocoHubErrors, IPocoHubEvents, PocoTypes} from "../src/hub/IPocoHub.sol";

contract RejectsNative {
    receive() external payable {
        revert("no thanks");
    }
}

contract EscrowTest is HubFixture {
    address alice = address(0xA11CE0);

    function test_deposit_creditsBalanceAndEmits() public {
        vm.deal(alice, 5 ether);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.Transfer(address(0), alice, 5 ether);
        vm.prank(alice);
        vm.assertTrue(hub.deposit{value: 5 ether}(), "returns true");
        vm.assertEq(hub.balanceOf(alice), 5 ether, "balance");
        vm.assertEq(hub.frozenOf(alice), 0, "frozen");
        vm.assertEq(address(hub).balance, 5 ether + 2e15, "hub holds it");
    }

    function test_depositFor_creditsTarget() public {
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        hub.depositFor{value: 1 ether}(worker);
        vm.assertEq(hub.balanceOf(worker), 1 ether, "target credited");
        vm.assertEq(hub.balanceOf(alice), 0, "sender not credited");
    }

    function test_depositFor_zeroReverts() public {
        vm.expectRevert(IPocoHubErrors.ZeroAddress.selector);
        hub.depositFor{value: 0}(address(0));
    }

    function test_withdraw_paysOut() public {
        fund(alice, 3 ether);
        vm.expectEmit(address(hub));
        emit IPocoHubEvents.Transfer(alice, address(0), 1 ether);
        vm.prank(alice);
        hub.withdraw(1 ether);
        vm.assertEq(alice.balance, 1 ether, "native back");
        vm.assertEq(hub.balanceOf(alice), 2 ether, "balance left");
    }

    function test_withdrawTo_paysTarget() public {
        fund(alice, 3 ether);
        vm.prank(alice);
        hub.withdrawTo(2 ether, address(0xBEEF));
        vm.assertEq(address(0xBEEF).balance, 2 ether, "target paid");
        vm.prank(alice);
        vm.expectRevert(IPocoHubErrors.ZeroAddress.selector);
        hub.withdrawTo(1, address(0));
    }

    function test_withdraw_moreThanBalanceReverts() public {
        fund(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.InsufficientBalance.selector, alice, 1 ether, 2 ether));
        hub.withdraw(2 ether);
    }

    function test_withdraw_toRejectingContractReverts() public {
        fund(alice, 1 ether);
        RejectsNative sink = new RejectsNative();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.NativeTransferFailed.selector, address(sink), 1 ether));
        hub.withdrawTo(1 ether, address(sink));
    }

    function test_deposit_overflowReverts() public {
        uint256 big = uint256(type(uint128).max);
        vm.deal(alice, big + 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPocoHubErrors.AmountTooLarge.selector, big + 1));
        hub.deposit{value: big + 1}();
    }

    function test_viewAccount_showsLockedFunds() public {
        matchDefault(2);
        PocoTypes.Account memory a = hub.viewAccount(requester);
        uint256 locked = 2 * (APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE);
        vm.assertEq(a.locked, locked, "locked");
        vm.assertEq(a.stake, 1e15 - locked, "stake");
        vm.assertEq(hub.frozenOf(scheduler), 2 * (WORKERPOOL_PRICE * 30 / 100), "scheduler stake");
    }

    function testFuzz_depositWithdraw_conservesValue(uint96 depositAmount, uint96 withdrawAmount) public {
        vm.deal(alice, depositAmount);
        vm.prank(alice);
        hub.deposit{value: depositAmount}();
        uint256 hubBefore = address(hub).balance;
        vm.prank(alice);
        if (withdrawAmount > depositAmount) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IPocoHubErrors.InsufficientBalance.selector, alice, uint256(depositAmount), uint256(withdrawAmount)
                )
            );
            hub.withdraw(withdrawAmount);
            return;
        }
        hub.withdraw(withdrawAmount);
        vm.assertEq(address(hub).balance, hubBefore - withdrawAmount, "hub balance");
        vm.assertEq(hub.balanceOf(alice), uint256(depositAmount) - withdrawAmount, "account");
        vm.assertEq(alice.balance, withdrawAmount, "wallet");
    }
}
