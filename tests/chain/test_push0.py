"""No PoX contract uses PUSH0 (0x5f, Shanghai), which bloxberg's Istanbul EVM would reject.

The runtime code is disassembled (skipping PUSH immediates) after removing the CBOR metadata
that solc appends, whose bytes are data, not code."""

from __future__ import annotations

import pytest
from web3 import Web3

from pox_executor.chain.artifacts import EXPORTED_CONTRACTS, load_artifact
from pox_executor.chain.deploy import PoxDeployment

PUSH0 = 0x5F
PUSH1, PUSH32 = 0x60, 0x7F


def strip_cbor_metadata(code: bytes) -> bytes:
    """Drop solc's trailing CBOR metadata (its length is the last two bytes, big endian)."""
    if len(code) < 2:
        return code
    length = int.from_bytes(code[-2:], "big")
    if length + 2 > len(code) or code[-2 - length] not in (0xA1, 0xA2, 0xA3):
        return code  # no recognizable metadata map
    return code[: -2 - length]


def opcodes(code: bytes) -> list[int]:
    """Opcodes in order, PUSH1..PUSH32 immediates skipped."""
    out, pc = [], 0
    while pc < len(code):
        op = code[pc]
        out.append(op)
        pc += 1 + (op - PUSH1 + 1 if PUSH1 <= op <= PUSH32 else 0)
    return out


def test_disassembler_sees_push0_and_skips_immediates() -> None:
    assert PUSH0 in opcodes(bytes([0x60, 0x01, PUSH0, 0x00]))
    assert PUSH0 not in opcodes(bytes([0x60, PUSH0, 0x61, PUSH0, PUSH0, 0x00]))
    metadata = bytes([0xA2, PUSH0, PUSH0])
    assert strip_cbor_metadata(bytes([0x00]) + metadata + (3).to_bytes(2, "big")) == bytes([0x00])


@pytest.mark.parametrize("name", sorted(EXPORTED_CONTRACTS))
def test_artifact_runtime_has_no_push0(name: str) -> None:
    code = strip_cbor_metadata(load_artifact(name).deployed_code())
    assert code, "runtime code present"
    assert PUSH0 not in opcodes(code)


def test_code_deployed_on_istanbul_anvil_has_no_push0(w3: Web3, pox: PoxDeployment) -> None:
    for contract in (pox.apps, pox.datasets, pox.workerpools, pox.hub, pox.batch_proofs, pox.runs):
        code = bytes(w3.eth.get_code(contract.address))
        assert PUSH0 not in opcodes(strip_cbor_metadata(code))
