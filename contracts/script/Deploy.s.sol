// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AppRegistry} from "../src/registries/AppRegistry.sol";
import {DatasetRegistry} from "../src/registries/DatasetRegistry.sol";
import {WorkerpoolRegistry} from "../src/registries/WorkerpoolRegistry.sol";
import {PocoHub} from "../src/PocoHub.sol";
import {BatchProofs, IBatchSource} from "../src/BatchProofs.sol";
import {WorkflowRunRegistry} from "../src/WorkflowRunRegistry.sol";

interface VmBroadcast {
    function startBroadcast() external;
    function stopBroadcast() external;
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256);
}

/// @notice Deploys every PoX contract and creates category 0. bloxberg needs legacy transactions:
///         forge script script/Deploy.s.sol --rpc-url https://core.bloxberg.org --legacy \
///             --with-gas-price 1gwei --broadcast --private-key ...
///         POX_CATEGORY_TIME_REF (seconds, default 3600) sets the category's time reference.
contract Deploy {
    VmBroadcast internal constant vm = VmBroadcast(address(uint160(uint256(keccak256("hevm cheat code")))));

    function run() external returns (PocoHub hub, BatchProofs proofs, WorkflowRunRegistry runs) {
        uint256 timeRef = vm.envOr("POX_CATEGORY_TIME_REF", uint256(3600));
        vm.startBroadcast();
        AppRegistry apps = new AppRegistry();
        DatasetRegistry datasets = new DatasetRegistry();
        WorkerpoolRegistry pools = new WorkerpoolRegistry();
        hub = new PocoHub(apps, datasets, pools);
        proofs = new BatchProofs(IBatchSource(address(hub)));
        runs = new WorkflowRunRegistry();
        hub.createCategory("default", "PoX jobs", timeRef);
        vm.stopBroadcast();
    }
}
