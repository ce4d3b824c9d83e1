"""The run registry checks the proofs PoX's own RFC 9162 log code produces
(`pox_executor.provenance.merkle`): inclusion of an envelope and consistency of two anchored
checkpoints of a growing run, on anvil with legacy transactions; and a stranger who anchors a
run id first (or a huge tree size ahead of the real anchor) neither blocks the requester nor
changes what settlement and `pox verify` read for the requester's run."""

from __future__ import annotations

import hashlib

from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from pox_executor.chain.deploy import PoxDeployment, decode_events, transact
from pox_executor.provenance import merkle


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sizes=st.tuples(st.integers(1, 40), st.integers(0, 40)), pick=st.integers(0, 10**6))
def test_anchored_checkpoints_verify_python_proofs(
    w3: Web3, pox: PoxDeployment, keys: dict[str, str], sizes: tuple[int, int], pick: int
) -> None:
    old_size, growth = sizes
    new_size = old_size + growth
    entries = [f"envelope {pick} {i}".encode() for i in range(new_size)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    run_id = hashlib.sha256(f"run {sizes} {pick}".encode()).digest()
    origin = f"pox/run/{run_id.hex()[:16]}"
    runs = pox.runs.functions
    first = transact(
        w3,
        keys["requester"],
        runs.anchorRun(run_id, origin, old_size, merkle.root(leaves[:old_size]), "ipfs://b", []),
    )
    assert decode_events(pox.runs.events.RunAnchored(), first)[0]["treeSize"] == old_size
    if growth:
        transact(
            w3,
            keys["requester"],
            runs.anchorRun(run_id, origin, new_size, merkle.root(leaves), "ipfs://b2", []),
        )
    consistency = merkle.consistency_proof(leaves, old_size)
    requester = Account.from_key(keys["requester"]).address
    assert runs.verifyConsistency(requester, run_id, old_size, new_size, consistency).call()
    index = pick % new_size
    inclusion = merkle.inclusion_proof(leaves, index)
    assert runs.leafHash(entries[index]).call() == leaves[index]
    assert runs.verifyInclusion(requester, run_id, new_size, index, leaves[index], inclusion).call()
    assert not runs.verifyInclusion(
        requester, run_id, new_size, index, merkle.leaf_hash(b"x"), inclusion
    ).call()


def test_squatter_and_huge_size_do_not_reach_the_requesters_run(
    w3: Web3, pox: PoxDeployment, keys: dict[str, str]
) -> None:
    """The attacks on the old registry (first caller owned a run id) now fail to exploit."""
    run_id = hashlib.sha256(b"run seen in a mempool").digest()
    origin = "pox/run/seen"
    runs = pox.runs.functions
    requester = Account.from_key(keys["requester"]).address
    stranger = keys["worker"]
    transact(w3, stranger, runs.anchorRun(run_id, origin, 2**64 - 1, b"\x66" * 32, "evil", []))
    assert runs.viewRun(requester, run_id).call()[0] == 0  # the requester's run is untouched
    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(3)]
    receipt = transact(
        w3, keys["requester"], runs.anchorRun(run_id, origin, 3, merkle.root(leaves), "b", [])
    )
    event = decode_events(pox.runs.events.RunAnchored(), receipt)[0]
    assert event["submitter"] == requester
    assert event["runKey"] == runs.runKey(requester, run_id).call()
    size, root, anchors, _ = runs.viewRun(requester, run_id).call()
    assert (size, root, anchors) == (3, merkle.root(leaves), 1)
