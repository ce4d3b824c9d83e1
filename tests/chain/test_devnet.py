"""The devnet starts anvil like bloxberg, and a state file carries a chain across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_tools import require_tool
from web3 import Web3

from pox_executor.chain.deploy import send_legacy_transaction
from pox_executor.chain.devnet import DevnetError, find_anvil, start_devnet


def test_state_survives_sigterm_restart(tmp_path: Path) -> None:
    require_tool(find_anvil() is not None, "anvil")
    state = tmp_path / "chain.json"
    with start_devnet(state_file=state) as net:
        w3 = Web3(Web3.HTTPProvider(net.rpc_url))
        receiver = "0x000000000000000000000000000000000000bEEF"
        send_legacy_transaction(
            w3, net.private_keys[0], {"to": receiver, "value": 12345}, gas=21_000
        )
    assert state.exists()
    with start_devnet(state_file=state) as net:
        w3 = Web3(Web3.HTTPProvider(net.rpc_url))
        assert w3.eth.get_balance(receiver) == 12345
        assert w3.eth.chain_id == 8995


def test_missing_anvil_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="anvil is not an executable file") as err:
        start_devnet(anvil=tmp_path / "anvil")
    assert "setup.sh" in err.value.diagnostics()


def test_failing_anvil_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\necho 'bad flag' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(DevnetError, match=r"exited with code 3:\s+bad flag"):
        start_devnet(anvil=fake)


def test_missing_tools_fail_in_ci_and_skip_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="anvil not installed"):
        require_tool(False, "anvil")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="forge not installed"):
        require_tool(False, "forge")
    require_tool(True, "forge")  # present: neither
