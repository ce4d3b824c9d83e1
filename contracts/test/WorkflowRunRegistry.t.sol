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
    address mallory = address(0xBAD);

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
        bytes32 key = registry.runKey(alice, RUN);
        vm.assertEq(key, keccak256(abi.encode(alice, RUN)), "run key");
        vm.expectEmit(address(registry));
        emit WorkflowRunRegistry.RunAnchored(RUN, alice, key, 3, root3, ORIGIN, "ipfs://bundle", tasks);
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 3, root3, "ipfs://bundle", tasks);

        bytes32 root5 = Merkle.root(l);
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 5, root5, "ipfs://bundle2", new bytes32[](0));
        (uint64 size, bytes32 root, uint32 anchors, bytes32 originHash) = registry.viewRun(alice, RUN);
        vm.assertEq(size, 5, "size");
        vm.assertEq(root, root5, "latest root");
        vm.assertEq(anchors, 2, "anchors");
        vm.assertEq(originHash, keccak256(bytes(ORIGIN)), "origin");
        vm.assertEq(registry.rootAt(alice, RUN, 3), root3, "older root kept");
    }

    function test_anchor_reverts() public {
        vm.expectRevert(WorkflowRunRegistry.EmptyRoot.selector);
        registry.anchorRun(RUN, ORIGIN, 1, bytes32(0), "", new bytes32[](0));
        vm.expectRevert(
            abi.encodeWithSelector(WorkflowRunRegistry.TreeSizeNotGrowing.selector, address(this), RUN, 0, 0)
        );
        registry.anchorRun(RUN, ORIGIN, 0, keccak256("r"), "", new bytes32[](0));

        vm.startPrank(alice);
        registry.anchorRun(RUN, ORIGIN, 4, keccak256("r4"), "", new bytes32[](0));
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.TreeSizeNotGrowing.selector, alice, RUN, 4, 4));
        registry.anchorRun(RUN, ORIGIN, 4, keccak256("r4b"), "", new bytes32[](0));
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.OriginChanged.selector, alice, RUN));
        registry.anchorRun(RUN, "pox/run/other", 5, keccak256("r5"), "", new bytes32[](0));
        vm.stopPrank();
    }

    /// Attack: a stranger who saw the run id (in an earlier anchor's calldata) anchors it first.
    /// The stranger's anchor lives under the stranger's key; the requester anchors as if nothing
    /// happened, and readers asking for the requester's run see only the requester's checkpoints.
    function test_attack_squattingARunIdDoesNotTouchTheRequestersRun() public {
        bytes32[] memory l = log(3);
        vm.prank(mallory);
        registry.anchorRun(RUN, ORIGIN, 2, keccak256("forged"), "ipfs://evil", new bytes32[](0));

        bytes32 real = Merkle.root(l); // computed before the prank: SHA-256 is a precompile call
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 3, real, "ipfs://bundle", new bytes32[](0));
        (uint64 size, bytes32 root, uint32 anchors,) = registry.viewRun(alice, RUN);
        vm.assertEq(size, 3, "requester's size");
        vm.assertEq(root, real, "requester's root");
        vm.assertEq(anchors, 1, "only the requester's anchor");
        vm.assertEq(registry.rootAt(alice, RUN, 2), bytes32(0), "the squatter's root is not the requester's");
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, alice, RUN, 2));
        registry.verifyInclusion(alice, RUN, 2, 0, l[0], new bytes32[](0));
    }

    /// Attack: a stranger anchors a huge tree size for the run id ahead of the real anchor, so
    /// that "a later checkpoint is already anchored" would make the real one skip. The
    /// requester's run stays empty until the requester anchors, then holds exactly that anchor,
    /// and the requester's incremental anchors keep growing from it.
    function test_attack_hugeTreeSizeAheadOfTheRealAnchorIsIgnored() public {
        vm.prank(mallory);
        registry.anchorRun(RUN, ORIGIN, type(uint64).max, keccak256("huge"), "", new bytes32[](0));
        (uint64 size,, uint32 anchors,) = registry.viewRun(alice, RUN);
        vm.assertEq(size, 0, "nothing anchored for the requester");
        vm.assertEq(anchors, 0, "no anchors for the requester");

        bytes32[] memory l = log(6);
        vm.startPrank(alice);
        registry.anchorRun(RUN, ORIGIN, 4, Merkle.root(l, 0, 4), "", new bytes32[](0));
        registry.anchorRun(RUN, ORIGIN, 6, Merkle.root(l), "", new bytes32[](0));
        vm.stopPrank();
        (size,, anchors,) = registry.viewRun(alice, RUN);
        vm.assertEq(size, 6, "requester's latest size");
        vm.assertEq(anchors, 2, "both requester anchors");
        vm.assertTrue(registry.verifyConsistency(alice, RUN, 4, 6, Merkle.consistency(l, 4, 6)), "grew");
        (size,,,) = registry.viewRun(mallory, RUN);
        vm.assertEq(size, type(uint64).max, "the stranger only wrote under its own key");
    }

    /// Fuzz: whatever a stranger anchors first, the requester's first anchor of any size succeeds
    /// and is what the requester's key reads.
    function testFuzz_strangersNeverBlockTheRequester(address stranger, uint64 strangerSize, uint64 size) public {
        vm.assume(stranger != alice);
        strangerSize = uint64(bound(strangerSize, 1, type(uint64).max));
        size = uint64(bound(size, 1, type(uint64).max));
        vm.prank(stranger);
        registry.anchorRun(RUN, "pox/run/squat", strangerSize, keccak256("s"), "", new bytes32[](0));
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, size, keccak256("a"), "", new bytes32[](0));
        (uint64 anchored, bytes32 root,,) = registry.viewRun(alice, RUN);
        vm.assertEq(anchored, size, "size");
        vm.assertEq(root, keccak256("a"), "root");
    }

    function test_verifyInclusion_againstAnchoredRoots() public {
        bytes32[] memory l = log(7);
        bytes32 root = Merkle.root(l);
        vm.prank(alice);
        registry.anchorRun(RUN, ORIGIN, 7, root, "", new bytes32[](0));
        for (uint256 i = 0; i < 7; ++i) {
            bytes32[] memory proof = Merkle.path(l, i);
            vm.assertTrue(registry.verifyInclusion(alice, RUN, 7, i, l[i], proof), "included");
            vm.assertFalse(registry.verifyInclusion(alice, RUN, 7, (i + 1) % 7, l[i], proof), "wrong index");
        }
        vm.assertEq(registry.leafHash(abi.encodePacked("envelope ", uint256(0))), l[0], "leaf hash");
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, alice, RUN, 6));
        registry.verifyInclusion(alice, RUN, 6, 0, l[0], new bytes32[](0));
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
        vm.assertTrue(registry.verifyInclusion(address(this), runId, uint64(n), i, l[i], proof), "valid proof");
        vm.assertFalse(
            registry.verifyInclusion(address(this), runId, uint64(n), i, keccak256("x"), proof), "other leaf"
        );
        if (proof.length > 0) {
            uint256 k = flip % proof.length;
            proof[k] = proof[k] ^ bytes32(uint256(1));
            vm.assertFalse(registry.verifyInclusion(address(this), runId, uint64(n), i, l[i], proof), "tampered proof");
            bytes32[] memory shorter = new bytes32[](proof.length - 1);
            vm.assertFalse(registry.verifyInclusion(address(this), runId, uint64(n), i, l[i], shorter), "short proof");
        }
        bytes32[] memory longer = new bytes32[](proof.length + 1);
        vm.assertFalse(registry.verifyInclusion(address(this), runId, uint64(n), i, l[i], longer), "long proof");
        vm.assertFalse(registry.verifyInclusion(address(this), runId, uint64(n), n, l[i], proof), "index out of tree");
    }

    function test_verifyConsistency_ofAnchoredCheckpoints() public {
        bytes32[] memory l = log(9);
        vm.startPrank(alice);
        registry.anchorRun(RUN, ORIGIN, 4, Merkle.root(l, 0, 4), "", new bytes32[](0));
        registry.anchorRun(RUN, ORIGIN, 9, Merkle.root(l), "", new bytes32[](0));
        vm.stopPrank();
        bytes32[] memory proof = Merkle.consistency(l, 4, 9);
        vm.assertTrue(registry.verifyConsistency(alice, RUN, 4, 9, proof), "grew");
        vm.assertFalse(registry.verifyConsistency(alice, RUN, 9, 4, proof), "shrinking is not growth");
        vm.assertTrue(registry.verifyConsistency(alice, RUN, 9, 9, new bytes32[](0)), "same checkpoint");
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, alice, RUN, 5));
        registry.verifyConsistency(alice, RUN, 5, 9, proof);
        vm.expectRevert(abi.encodeWithSelector(WorkflowRunRegistry.UnknownCheckpoint.selector, alice, RUN, 10));
        registry.verifyConsistency(alice, RUN, 4, 10, proof);
    }

    function test_verifyConsistency_detectsRewrittenHistory() public {
        bytes32[] memory l = log(6);
        vm.startPrank(alice);
        registry.anchorRun(RUN, ORIGIN, 3, Merkle.root(l, 0, 3), "", new bytes32[](0));
        l[1] = Merkle.leaf("a different second entry");
        registry.anchorRun(RUN, ORIGIN, 6, Merkle.root(l), "", new bytes32[](0));
        vm.stopPrank();
        vm.assertFalse(registry.verifyConsistency(alice, RUN, 3, 6, Merkle.consistency(l, 3, 6)), "forked log");
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
        vm.assertTrue(registry.verifyConsistency(address(this), runId, uint64(m), uint64(n), proof), "valid proof");
        if (proof.length > 0) {
            uint256 k = flip % proof.length;
            proof[k] = proof[k] ^ bytes32(uint256(1));
            vm.assertFalse(registry.verifyConsistency(address(this), runId, uint64(m), uint64(n), proof), "tampered");
            proof[k] = proof[k] ^ bytes32(uint256(1));
            bytes32[] memory longer = new bytes32[](proof.length + 1);
            for (uint256 i = 0; i < proof.length; ++i) {
                longer[i] = proof[i];
            }
            vm.assertFalse(registry.verifyConsistency(address(this), runId, uint64(m), uint64(n), longer), "extra hash");
        }
        if (n > m) {
            vm.assertFalse(
                registry.verifyConsistency(address(this), runId, uint64(m), uint64(n), new bytes32[](0)), "empty proof"
            );
        }
    }
}
