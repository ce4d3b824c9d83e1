"""The local node's lifecycle: one anvil per state directory, even when it is slow to answer,
and a state file truncated by a killed node does not stop the next start."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_tools import require_tool

from pox_executor.chain import localnet
from pox_executor.chain.devnet import DevnetError, find_anvil, rpc_call


@pytest.fixture
def devnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    require_tool(find_anvil() is not None, "anvil")
    monkeypatch.setenv("POX_DATA_DIR", str(tmp_path / "data"))
    directory = localnet.devnet_dir()
    try:
        yield directory
    finally:
        node = (
            json.loads((directory / "node.json").read_text())
            if (directory / "node.json").exists()
            else {}
        )
        if node.get("pid"):
            os.kill(int(node["pid"]), signal.SIGCONT)
        localnet.stop(directory)


def _anvils_on(directory: Path) -> list[int]:
    state = os.fsencode(directory / "state.json")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if state in argv and Path(os.fsdecode(argv[0])).name == "anvil":
                pids.append(int(entry.name))
    return pids


def test_a_busy_node_is_waited_for_not_started_twice(devnet: Path) -> None:
    first = localnet.start(devnet)
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)  # answers nothing for 2.5 s, like a node under load
    resume = threading.Timer(2.5, os.kill, (first.pid, signal.SIGCONT))
    resume.start()
    try:
        again = localnet.start(devnet, timeout_s=20)
    finally:
        resume.join()
    assert again.pid == first.pid and again.rpc_url == first.rpc_url
    assert _anvils_on(devnet) == [first.pid]


def test_a_node_that_never_answers_is_named_not_replaced(devnet: Path) -> None:
    first = localnet.start(devnet)
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)
    try:
        with pytest.raises(DevnetError) as err:
            localnet.start(devnet, timeout_s=2)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    text = err.value.diagnostics()
    assert f"pid {first.pid}" in text and "did not answer" in text and "pox chain down" in text
    assert _anvils_on(devnet) == [first.pid]


def test_a_truncated_state_file_is_kept_aside_and_the_last_good_one_resumed(
    devnet: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = localnet.start(devnet)
    addresses = localnet.ensure_deployed(node)
    time.sleep(1.5)  # anvil writes its state every second
    assert localnet.stop(devnet)
    localnet.start(devnet)  # a start copies the good state aside
    assert (devnet / "state.last-good.json").exists()
    pid = json.loads((devnet / "node.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # killed while writing: anvil rewrites the file in place
    while localnet._alive(pid):
        time.sleep(0.05)
    truncated = (devnet / "state.json").read_bytes()[:100]
    (devnet / "state.json").write_bytes(truncated)

    with caplog.at_level("WARNING", logger="pox_executor.chain.localnet"):
        restarted = localnet.start(devnet)
    assert restarted.pid != pid
    broken = list(devnet.glob("state.json.broken-*"))
    assert len(broken) == 1 and broken[0].read_bytes() == truncated
    assert "not valid JSON" in caplog.text and "state.last-good.json" in caplog.text
    code = rpc_call(restarted.rpc_url, "eth_getCode", [addresses["WorkflowRunRegistry"], "latest"])
    assert code not in ("0x", ""), "the contracts of the last good state are there"
