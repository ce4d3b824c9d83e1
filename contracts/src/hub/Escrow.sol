// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubStorage} from "./HubStorage.sol";
import {PocoTypes} from "./IPocoHub.sol";

/// @title Escrow
/// @notice Native-currency escrow of the hub, after PoCo's native escrow: accounts hold a free
///         balance and a frozen amount. Deals lock funds (requester payment, scheduler stake),
///         tasks unlock, seize and reward them. The hub's native balance always equals the sum
///         of all balances and frozen amounts.
abstract contract Escrow is HubStorage {
    /// @notice Deposit the sent value into the caller's balance.
    function deposit() external payable returns (bool) {
        _mint(msg.sender, msg.value);
        return true;
    }

    /// @notice Deposit the sent value into `target`'s balance.
    function depositFor(address target) external payable returns (bool) {
        if (target == address(0)) revert ZeroAddress();
        _mint(target, msg.value);
        return true;
    }

    /// @notice Withdraw `amount` of the caller's free balance to the caller.
    function withdraw(uint256 amount) external returns (bool) {
        _withdraw(amount, msg.sender);
        return true;
    }

    /// @notice Withdraw `amount` of the caller's free balance to `target`.
    function withdrawTo(uint256 amount, address target) external returns (bool) {
        if (target == address(0)) revert ZeroAddress();
        _withdraw(amount, target);
        return true;
    }

    /// @notice Free balance of `account`.
    function balanceOf(address account) external view returns (uint256) {
        return _accounts[account].balance;
    }

    /// @notice Frozen (locked) amount of `account`.
    function frozenOf(address account) external view returns (uint256) {
        return _accounts[account].frozen;
    }

    /// @notice Free balance and frozen amount of `account`, in PoCo's shape.
    function viewAccount(address account) external view returns (PocoTypes.Account memory) {
        AccountRecord memory a = _accounts[account];
        return PocoTypes.Account(a.balance, a.frozen);
    }

    function _mint(address target, uint256 amount) private {
        if (amount > type(uint128).max - _accounts[target].balance) revert AmountTooLarge(amount);
        _accounts[target].balance += uint128(amount);
        emit Transfer(address(0), target, amount);
    }

    function _withdraw(uint256 amount, address target) private {
        AccountRecord storage a = _accounts[msg.sender];
        if (a.balance < amount) revert InsufficientBalance(msg.sender, a.balance, amount);
        a.balance -= uint128(amount);
        emit Transfer(msg.sender, address(0), amount);
        (bool ok,) = target.call{value: amount}("");
        if (!ok) revert NativeTransferFailed(target, amount);
    }

    /// @dev Move `amount` from free to frozen.
    function _lock(address account, uint256 amount) internal {
        if (amount == 0) return;
        AccountRecord storage a = _accounts[account];
        if (a.balance < amount) revert InsufficientBalance(account, a.balance, amount);
        a.balance -= uint128(amount);
        a.frozen += uint128(amount);
        emit Lock(account, amount);
    }

    /// @dev Move `amount` from frozen back to free.
    function _unlock(address account, uint256 amount) internal {
        if (amount == 0) return;
        AccountRecord storage a = _accounts[account];
        if (a.frozen < amount) revert InsufficientFrozen(account, a.frozen, amount);
        a.frozen -= uint128(amount);
        a.balance += uint128(amount);
        emit Unlock(account, amount);
    }

    /// @dev Take `amount` out of `account`'s frozen funds (the value stays in the hub and must
    ///      be rewarded to someone in the same call).
    function _seize(address account, uint256 amount, bytes32 ref) internal {
        if (amount == 0) return;
        AccountRecord storage a = _accounts[account];
        if (a.frozen < amount) revert InsufficientFrozen(account, a.frozen, amount);
        a.frozen -= uint128(amount);
        emit Seize(account, amount, ref);
    }

    /// @dev Credit `amount` (previously seized) to `account`'s free balance.
    function _reward(address account, uint256 amount, bytes32 ref) internal {
        if (amount == 0) return;
        _accounts[account].balance += uint128(amount);
        emit Reward(account, amount, ref);
    }
}
