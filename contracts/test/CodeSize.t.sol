// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {WorkflowRunRegistry} from "../src/WorkflowRunRegistry.sol";

/// EIP-170: bloxberg refuses runtime code above 24,576 bytes; the hub is close to it.
contract CodeSizeTest is HubFixture {
    uint256 constant EIP170_LIMIT = 24_576;

    function test_everyDeployedContractFitsEip170() public {
        WorkflowRunRegistry runs = new WorkflowRunRegistry();
        address[6] memory deployed =
            [address(hub), address(apps), address(datasets), address(pools), address(proofs), address(runs)];
        for (uint256 i = 0; i < deployed.length; ++i) {
            vm.assertLe(deployed[i].code.length, EIP170_LIMIT, "runtime code above EIP-170");
        }
        vm.assertTrue(address(hub).code.length > 20_000, "hub measured, not an empty stub");
    }
}
