// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EntryRegistry} from "./EntryRegistry.sol";

/// @title DatasetRegistry
/// @notice Registry of datasets: name, multiaddr (where the encrypted data lives) and checksum.
///         One ERC-721 token per dataset; the token owner owns the dataset.
contract DatasetRegistry is EntryRegistry {
    /// @notice What PoCo's `Dataset` contract exposes, kept here per dataset address.
    struct DatasetInfo {
        string name;
        bytes multiaddr;
        bytes32 checksum;
    }

    /// @notice A new dataset was registered at `dataset` for `owner`.
    event DatasetCreated(address indexed dataset, address indexed owner, string name, bytes32 checksum);

    mapping(address dataset => DatasetInfo) private _datasets;

    constructor() EntryRegistry("PoX Datasets", "POXDATA") {}

    /// @notice Register a dataset. Same owner and arguments give the same address, once.
    function createDataset(address owner, string calldata datasetName, bytes calldata multiaddr, bytes32 checksum)
        external
        returns (address dataset)
    {
        dataset = _register(owner, keccak256(abi.encode(datasetName, multiaddr, checksum)));
        _datasets[dataset] = DatasetInfo(datasetName, multiaddr, checksum);
        emit DatasetCreated(dataset, owner, datasetName, checksum);
    }

    /// @notice Metadata of a registered dataset.
    function viewDataset(address dataset) external view returns (DatasetInfo memory) {
        if (!isRegistered(dataset)) revert EntryNotRegistered(dataset);
        return _datasets[dataset];
    }
}
