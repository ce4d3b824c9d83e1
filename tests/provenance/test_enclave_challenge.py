"""The session's enclave challenge key: an Ethereum account kept under .pox/enclave-keys."""

from __future__ import annotations

import stat
from pathlib import Path

from eth_account import Account

from pox_executor.provenance.recorder import ENCLAVE_KEYS_DIR, new_enclave_challenge


def test_the_challenge_address_is_the_checksummed_address_of_the_stored_key(
    tmp_path: Path,
) -> None:
    addresses = {new_enclave_challenge(tmp_path) for _ in range(5)}
    assert len(addresses) == 5
    for address in addresses:
        path = tmp_path / ".pox" / ENCLAVE_KEYS_DIR / f"{address}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = bytes.fromhex(path.read_text().strip())
        assert Account.from_key(secret).address == address
