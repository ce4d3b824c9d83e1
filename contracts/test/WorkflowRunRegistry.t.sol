// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./utils/Vm.sol";
import {Merkle} from "./utils/Merkle.sol";
import {WorkflowRunRegistry} from "../src/WorkflowRunRegistry.sol";

contract WorkflowRunRegistryTest is TestBase {
    WorkflowRunRegistry registry;
    bytes32 constant RUN = keccak256("run-1");
    string constant ORIGIN = "pox/run/run-1";
    address alice = address(0xA11CE);

    function setUp() public {
        registry = new WorkflowRunRegistry();
    }

    function log(uint256 n) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            leaves[i] = Merkle.leaf(abi.encodePacked("envelope ", i));
        }
    }

    function test_anchor_firstAndGrowing() public {
        bytes32[] memory l = log(5);
        bytes32 root3 = Merkle.root(l, 0, 3);
        bytes32[] memory tasks = new bytes32[](2);
        tasks[0] = keccak256("t0");
        tasks[1] = keccak256("t1");
        vm.expectEmit(address(registry));
        emit WorkflowRunRegistry.RunAnchored(RUN, alice, 3, root3, ORIGIN, "ipfs://bundle", tasks);
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 3, root3, "ipfs://bundle", tasks);

        bytes32 root5 = Merkle.root(l);
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 5, root5, "ipfs://bundle2", new bytes32[](0));
        (address submitter, uint64 size, bytes32 root, uint32 anchors, bytes32 originHash) = registry.viewRun(RUN);
        vm.assertEq(submitter, alice, "submitter");
        vm.assertEq(size, 5, "size");
        vm.assertEq(root, root5, "latest root");
        vm.assertEq(anchors, 2, "anchors");
        vm.assertEq(originHash, keccak256(bytes(ORIGIN)), "origin");
        vm.assertEq(registry.rootAt(RUN, 3), root3, "older root kept");
    }

    function test_anchor_reverts() public {
        vm.expectRevert(WorkflowRunRegistry.EmptyRoot.selector);
        registry.anchorRun(RUN, ORIGIN, 1, bytes32(0), "", new bytes32[](0));
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.TreeSizeNotGrowing.selector, RUN, 0, 0));
        registry.anchorRun(RUN, ORIGIN, 0, keccak256("r"), "", new bytes32[](0));

        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 4, keccak256("r4"), "", new bytes32[](0));
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.NotRunSubmitter.selector, RUN, alice, address(this)));
        registry.anchorRun(RUN, ORIGIN, 5, keccak256("r5"), "", new bytes32[](0));
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.TreeSizeNotGrowing.selector, RUN, 4, 4));
        registry.anchorRun(RUN, ORIGIN, 4, keccak256("r4b"), "", new bytes32[](0));
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.OriginChanged.selector, RUN));
        registry.anchorRun(RUN, "pox/run/other", 5, keccak256("r5"), "", new bytes32[](0));
        vm.stopPrank();
    }

    function test_verifyInclusion_againstAnchoredRoots() public {
        bytes32[] memory l = log(7);
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 7, Merkle.root(l), "", new bytes32[](0));
        for (uint256 i = 0; i < 7; ++i) {
            bytes32[] memory proof = Merkle.path(l, i);
            vm.assertTrue(registry.verifyInclusion(RUN, 7, i, l[i], proof), "included");
            vm.assertFalse(registry.verifyInclusion(RUN, 7, (i + 1) % 7, l[i], proof), "wrong index");
        }
        vm.assertEq(registry.leafHash(abi.encodePacked("envelope ", uint256(0))), l[0], "leaf hash");
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, RUN, 6));
        registry.verifyInclusion(RUN, 6, 0, l[0], new bytes32[](0));
    }

    /// Fuzz: for any tree size and index, the RFC's PATH verifies and tampering does not.
    function testFuzz_inclusionProofs(uint8 sizeSeed, uint8 indexSeed, uint8 flip) public {
        uint256 n = bound(sizeSeed, 1, 70);
        uint256 i = bound(indexSeed, 0, n - 1);
        bytes32[] memory l = log(n);
        bytes32 root = Merkle.root(l);
        bytes32 runId = keccak256(abi.encode(n));
        registry.anchorRun(runId, ORIGIN, uint64(n), root, "", new bytes32[](0));
        bytes32[] memory proof = Merkle.path(l, i);
        vm.assertTrue(registry.verifyInclusion(runId, uint64(n), i, l[i], proof), "valid proof");
        vm.assertFalse(registry.verifyInclusion(runId, uint64(n), i, keccak256("x"), proof), "other leaf");
        if (proof.length > 0) {
            uint256 k = flip % proof.length;
            proof[k] = proof[k] ^ bytes32(uint256(1));
            vm.assertFalse(registry.verifyInclusion(runId, uint64(n), i, l[i], proof), "tampered proof");
            bytes32[] memory shorter = new bytes32[](proof.length - 1);
            vm.assertFalse(registry.verifyInclusion(runId, uint64(n), i, l[i], shorter), "short proof");
        }
        bytes32[] memory longer = new bytes32[](proof.length + 1);
        vm.assertFalse(registry.verifyInclusion(runId, uint64(n), i, l[i], longer), "long proof");
        vm.assertFalse(registry.verifyInclusion(runId, uint64(n), n, l[i], proof), "index out of tree");
    }

    function test_verifyConsistency_ofAnchoredCheckpoints() public {
        bytes32[] memory l = log(9);
        vm.startPrank(alice);
        registry.anchorRun(RUN, ORIGIN, 4, Merkle.root(l, 0, 4), "", new bytes32[](0));
        registry.anchorRun(RUN, ORIGIN, 9, Merkle.root(l), "", new bytes32[](0));
        vm.stopPrank();
        bytes32[] memory proof = Merkle.consistency(l, 4, 9);
        vm.assertTrue(registry.verifyConsistency(RUN, 4, 9, proof), "grew");
        vm.assertFalse(registry.verifyConsistency(RUN, 9, 4, proof), "shrinking is not growth");
        vm.assertTrue(registry.verifyConsistency(RUN, 9, 9, new bytes32[](0)), "same checkpoint");
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, RUN, 5));
        registry.verifyConsistency(RUN, 5, 9, proof);
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, RUN, 10));
        registry.verifyConsistency(RUN, 4, 10, proof);
    }

    function test_verifyConsistency_detectsRewrittenHistory() public {
        bytes32[] memory l = log(6);
        vm.startPrank(alice);
        registry.anchorRun(RUN, ORIGIN, 3, Merkle.root(l, 0, 3), "", new bytes32[](0));
        l[1] = Merkle.leaf("a different second entry");
        registry.anchorRun(RUN, ORIGIN, 6, Merkle.root(l), "", new bytes32[](0));
        vm.stopPrank();
        vm.assertFalse(registry.verifyConsistency(RUN, 3, 6, Merkle.consistency(l, 3, 6)), "forked log");
    }

    /// Fuzz: for any sizes m <= n, the RFC's PROOF verifies and tampering does not.
    function testFuzz_consistencyProofs(uint8 newSeed, uint8 oldSeed, uint8 flip) public {
        uint256 n = bound(newSeed, 1, 70);
        uint256 m = bound(oldSeed, 1, n);
        bytes32[] memory l = log(n);
        bytes32 runId = keccak256(abi.encode(m, n));
        registry.anchorRun(runId, ORIGIN, uint64(m), Merkle.root(l, 0, m), "", new bytes32[](0));
        if (n > m) registry.anchorRun(runId, ORIGIN, uint64(n), Merkle.root(l), "", new bytes32[](0));
        bytes32[] memory proof = Merkle.consistency(l, m, n);
        vm.assertTrue(registry.verifyConsistency(runId, uint64(m), uint64(n), proof), "valid proof");
        if (proof.length > 0) {
            uint256 k = flip % proof.length;
            proof[k] = proof[k] ^ bytes32(uint256(1));
            vm.assertFalse(registry.verifyConsistency(runId, uint64(m), uint64(n), proof), "tampered");
            proof[k] = proof[k] ^ bytes32(uint256(1));
            bytes32[] memory longer = new bytes32[](proof.length + 1);
            for (uint256 i = 0; i < proof.length; ++i) {
                longer[i] = proof[i];
            }
            vm.assertFalse(registry.verifyConsistency(runId, uint64(m), uint64(n), longer), "extra hash");
        }
        if (n > m) {
            vm.assertFalse(registry.verifyConsistency(runId, uint64(m), uint64(n), new bytes32[](0)), "empty proof");
        }
    }
}
