"""A local chain configured like bloxberg, for tests, benchmarks and offline demos.

Owns starting and stopping an `anvil` process with bloxberg's parameters (chain id 8995,
Istanbul EVM, 8,000,000 block gas limit) on a free 127.0.0.1 port, optionally persisting its
state to a file across restarts, and reading back the funded development accounts. Finds anvil
in `$POX_ANVIL`, then the npm install under `contracts/node_modules`, then `$PATH`. Knows nothing
about PoX contracts (see `deploy.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from pox_executor.errors import PoxError

BLOXBERG_CHAIN_ID = 8995
BLOXBERG_HARDFORK = "istanbul"
BLOXBERG_BLOCK_GAS_LIMIT = 8_000_000

_REPO_ROOT = Path(__file__).resolve().parents[2]


class DevnetError(PoxError):
    """anvil could not be found, started or stopped."""


def find_anvil() -> Path | None:
    """Path of the anvil binary, or None when it is not installed."""
    explicit = os.environ.get("POX_ANVIL")
    if explicit:
        return Path(explicit)
    # The platform package's binary, not npm's node launcher: signals must reach anvil itself
    # so that SIGTERM dumps the state file.
    npm_dir = _REPO_ROOT / "contracts" / "node_modules" / "@foundry-rs"
    for candidate in sorted(npm_dir.glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout_s: float = 5.0) -> Any:
    """One JSON-RPC call over HTTP; returns `result` or raises DevnetError with the error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise DevnetError(f"{url}: {method} failed: {reply['error']}")
    return reply["result"]


@dataclass
class Devnet:
    """A running anvil. Use as a context manager, or call `stop()`."""

    rpc_url: str
    chain_id: int
    process: subprocess.Popen[bytes]
    private_keys: list[str]
    state_file: Path | None = None
    log_file: Path | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def accounts(self) -> list[str]:
        """Addresses of the funded development accounts, in key order."""
        return [str(a) for a in rpc_call(self.rpc_url, "eth_accounts")]

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop anvil with SIGTERM (it then writes the state file) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Devnet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def anvil_command(binary: Path | str, *, port: int, accounts: int, config_out: Path) -> list[str]:
    """anvil configured as bloxberg is: chain id 8995, Istanbul EVM, 8M block gas, on loopback."""
    return [
        str(binary),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--chain-id", str(BLOXBERG_CHAIN_ID),
        "--hardfork", BLOXBERG_HARDFORK,
        "--gas-limit", str(BLOXBERG_BLOCK_GAS_LIMIT),
        "--accounts", str(accounts),
        "--config-out", str(config_out),
    ]  # fmt: skip


def start_devnet(
    *,
    state_file: Path | None = None,
    accounts: int = 10,
    block_time_s: int | None = None,
    anvil: Path | None = None,
    startup_timeout_s: float = 30.0,
) -> Devnet:
    """Start anvil like bloxberg on a free port and wait until it answers.

    `state_file`: load it when it exists and write it back on stop (and every 5 s), so a run's
    chain survives restarts. `block_time_s`: mine on a timer (bloxberg: 5) instead of on every
    transaction.
    """
    binary = anvil or find_anvil()
    if binary is None:
        raise DevnetError(
            "anvil not found",
            hint="run `bash contracts/scripts/setup.sh`, or set POX_ANVIL to an anvil binary",
        )
    if not os.access(binary, os.X_OK):
        raise DevnetError(
            f"{binary}: anvil is not an executable file",
            hint="run `bash contracts/scripts/setup.sh`, or set POX_ANVIL to an anvil binary",
        )
    workdir = tempfile.TemporaryDirectory(prefix="pox-devnet-")
    config_out = Path(workdir.name) / "anvil.json"
    log_path = Path(workdir.name) / "anvil.log"
    port = _free_port()
    command = anvil_command(binary, port=port, accounts=accounts, config_out=config_out)
    if state_file is not None:
        command += ["--state", str(state_file), "--state-interval", "5"]
    if block_time_s is not None:
        command += ["--block-time", str(block_time_s)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout_s
    while True:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-2000:]
            workdir.cleanup()
            raise DevnetError(f"anvil exited with code {process.returncode}:\n{output}")
        try:
            chain_id = int(rpc_call(url, "eth_chainId", timeout_s=1.0), 16)
            if config_out.exists():
                break
        except (OSError, urllib.error.URLError, DevnetError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            workdir.cleanup()
            raise DevnetError(f"anvil did not answer on {url} within {startup_timeout_s} s")
        time.sleep(0.05)
    keys = [str(k) for k in json.loads(config_out.read_text())["private_keys"]]
    return Devnet(
        rpc_url=url,
        chain_id=chain_id,
        process=process,
        private_keys=keys,
        state_file=state_file,
        log_file=log_path,
        _workdir=workdir,
    )
