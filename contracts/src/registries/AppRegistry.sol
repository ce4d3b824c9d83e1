// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EntryRegistry} from "./EntryRegistry.sol";

/// @title AppRegistry
/// @notice Registry of apps: enclave images with their name, type, multiaddr (where the image
///         lives), checksum (image digest) and TEE fingerprint (the enclave measurement, PoCo's
///         `mrenclave`). One ERC-721 token per app; the token owner owns the app.
contract AppRegistry is EntryRegistry {
    /// @notice What PoCo's `App` contract exposes, kept here per app address.
    struct AppInfo {
        string name;
        string appType;
        bytes multiaddr;
        bytes32 checksum;
        bytes mrenclave;
    }

    /// @notice A new app was registered at `app` for `owner`.
    event AppCreated(address indexed app, address indexed owner, string name, bytes32 checksum);

    mapping(address app => AppInfo) private _apps;

    constructor() EntryRegistry("PoX Apps", "POXAPP") {}

    /// @notice Register an enclave image. Same owner and arguments give the same address, once.
    /// @return app the new app's address (also its token id).
    function createApp(
        address owner,
        string calldata appName,
        string calldata appType,
        bytes calldata multiaddr,
        bytes32 checksum,
        bytes calldata mrenclave
    ) external returns (address app) {
        app = _register(owner, keccak256(abi.encode(appName, appType, multiaddr, checksum, mrenclave)));
        _apps[app] = AppInfo(appName, appType, multiaddr, checksum, mrenclave);
        emit AppCreated(app, owner, appName, checksum);
    }

    /// @notice Address `createApp` would give for these arguments (PoCo's `predictApp`).
    function predictApp(
        address owner,
        string calldata appName,
        string calldata appType,
        bytes calldata multiaddr,
        bytes32 checksum,
        bytes calldata mrenclave
    ) external view returns (address) {
        bytes32 salt = keccak256(abi.encode(appName, appType, multiaddr, checksum, mrenclave));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), owner, salt)))));
    }

    /// @notice Metadata of a registered app.
    function viewApp(address app) external view returns (AppInfo memory) {
        if (!isRegistered(app)) revert EntryNotRegistered(app);
        return _apps[app];
    }
}
