"""A real IPFS node for the tests: js-ipfs 0.66.1's daemon (Kubo's RPC API under /api/v0) on
loopback, started with a fresh repository per test module and stopped afterwards.

Installed by `scripts/ipfs-node/setup.sh` (part of `make setup`). The node stays offline: the
`test` profile has no bootstrap peers and no mDNS, the swarm and API listen on 127.0.0.1 only,
and preloading (which would contact public preload nodes) is off.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ci_mode import missing_tool

NODE_DIR = Path(__file__).resolve().parents[2] / "scripts" / "ipfs-node" / "node_modules"
STARTUP_TIMEOUT_S = 300.0  # node loads ~500 MB of modules; slow on a loaded machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class IpfsDaemon:
    def __init__(self, repo: Path) -> None:
        node = NODE_DIR / ".bin" / "node"
        cli = NODE_DIR / "ipfs" / "src" / "cli.js"
        if not node.exists() or not cli.exists():
            missing_tool("js-ipfs not installed: run `bash scripts/ipfs-node/setup.sh`")
        self.argv = [str(node), str(cli)]
        self.env = {**os.environ, "IPFS_PATH": str(repo)}
        self.repo = repo
        self.log_path = repo.parent / "ipfs-daemon.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        subprocess.run(
            [*self.argv, "init", "--profile", "test"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=STARTUP_TIMEOUT_S,
        )
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        api_port = _free_port()
        config["Addresses"].update(
            API=f"/ip4/127.0.0.1/tcp/{api_port}",
            Swarm=[f"/ip4/127.0.0.1/tcp/{_free_port()}"],
            Gateway="",
            RPC="",
            Delegates=[],
        )
        config["Bootstrap"] = []
        config["Discovery"]["MDNS"]["Enabled"] = False
        config_path.write_text(json.dumps(config))
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [*self.argv, "daemon", "--enable-preload=false"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while b"Daemon is ready" not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"js-ipfs daemon did not start:\n{self.log()}")
            time.sleep(0.2)
        self.url = f"http://127.0.0.1:{api_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
