"""The `local` chain profile: one bloxberg-like anvil per user that starts itself and persists.

Owns `<data dir>/devnet/`: `state.json` (anvil's state, dumped every second and on SIGTERM, so
anchors survive restarts), `node.json` (pid, port and URL of the running node), `keys.json` (the
funded development keys anvil derives from its default mnemonic; devnet only), `anvil.log` and
`deployment.json` (PoX contracts and the `build` digest of their creation code, deployed once;
redeployed when the state lost them or the package ships another build). The
node is started fully detached (own session, no inherited stdin/stdout/stderr), so the process
that started it may exit, and CI never waits on its pipes. A file lock serialises concurrent
starts by concurrent workflows.

One node per directory: while the recorded node's process lives, `start` waits for it to answer
(a busy node may take seconds) and never starts a second anvil on the same state file, which
would read the file while the first one rewrites it. anvil rewrites `state.json` in place, so a
node killed mid-write leaves it truncated: `start` then keeps the broken file aside
(`state.json.broken-<time>`), resumes from `state.last-good.json` (the copy taken at the previous
start) and says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pox_executor.chain.devnet import (
    BLOXBERG_CHAIN_ID,
    DevnetError,
    _free_port,
    anvil_command,
    find_anvil,
    rpc_call,
)
from pox_executor.chain.profiles import CONTRACTS, data_dir, read_deployment, write_deployment
from pox_executor.primitives import utc_now, write_atomically

log = logging.getLogger(__name__)

ANVIL_HINT = (
    "install it with `bash contracts/scripts/setup.sh` (or `make setup`), set POX_ANVIL to an "
    "anvil binary, or run without a chain: `--pox-chain none` (anchor later with `pox anchor`)"
)

#: Development key roles, by index in anvil's default accounts.
DEV_ROLES = {"deployer": 0, "requester": 1, "scheduler": 2, "worker": 3}


def devnet_dir() -> Path:
    return data_dir() / "devnet"


@dataclass(frozen=True)
class LocalNode:
    rpc_url: str
    pid: int | None
    directory: Path

    @property
    def deployment_file(self) -> Path:
        return self.directory / "deployment.json"


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _answers(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return int(rpc_call(url, "eth_chainId", timeout_s=timeout_s), 16) == BLOXBERG_CHAIN_ID
    except (OSError, urllib.error.URLError, DevnetError, ValueError):
        return False


def _read_node(directory: Path) -> dict[str, object] | None:
    try:
        raw = json.loads((directory / "node.json").read_text(encoding="utf-8"))
        return raw if isinstance(raw, dict) else None
    except (OSError, json.JSONDecodeError):
        return None


def status(directory: Path | None = None, *, patience_s: float = 5.0) -> LocalNode | None:
    """The running local node, or None when none runs (a busy node gets `patience_s`)."""
    directory = directory or devnet_dir()
    return _recorded_node(directory, patience_s=patience_s)


def start(directory: Path | None = None, *, timeout_s: float = 30.0) -> LocalNode:
    """Return the running node, starting anvil (detached, persisted) when none runs."""
    directory = directory or devnet_dir()
    with _locked(directory):
        running = _recorded_node(directory, patience_s=timeout_s)
        if running is not None:
            return running
        binary = find_anvil()
        if binary is None or not os.access(binary, os.X_OK):
            raise DevnetError("anvil not found: the local chain profile needs it", hint=ANVIL_HINT)
        _check_state(directory)
        node = _read_node(directory) or {}
        port = int(str(node.get("port") or 0)) or _free_port()
        if not _port_free(port):
            port = _free_port()
        config_out = directory / "anvil-config.json"
        command = anvil_command(binary, port=port, accounts=10, config_out=config_out)
        command += ["--state", str(directory / "state.json"), "--state-interval", "1"]
        with open(directory / "anvil.log", "ab") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while not _answers(url):
            if process.poll() is not None:
                tail = (directory / "anvil.log").read_text(errors="replace")[-1500:]
                raise DevnetError(f"anvil exited with code {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                process.kill()
                raise DevnetError(f"anvil did not answer on {url} within {timeout_s} s")
            time.sleep(0.05)
        keys = _read_anvil_keys(config_out, deadline)
        _write_json(directory / "keys.json", {"private_keys": keys})
        os.chmod(directory / "keys.json", 0o600)
        _write_json(directory / "node.json", {"pid": process.pid, "port": port, "rpc_url": url})
        return LocalNode(url, process.pid, directory)


def _recorded_node(directory: Path, *, patience_s: float) -> LocalNode | None:
    """The node recorded in `node.json` when its process still lives, waiting up to
    `patience_s` for it to answer; None when no recorded node lives. A live node that never
    answers is an error: starting a second one would share its state file."""
    node = _read_node(directory)
    if not node:
        return None
    url = str(node.get("rpc_url"))
    pid = int(str(node.get("pid") or 0))
    if not pid:
        return LocalNode(url, None, directory) if _answers(url) else None
    if not _node_process(pid, directory):
        return None
    deadline = time.monotonic() + patience_s
    while not _answers(url, timeout_s=min(5.0, max(1.0, patience_s / 4))):
        if not _node_process(pid, directory):
            return None
        if time.monotonic() > deadline:
            raise DevnetError(
                f"the local node (anvil, pid {pid}) runs but did not answer on {url} "
                f"within {patience_s:g} s",
                hint=f"stop it with `pox chain down` (or `kill {pid}`) and retry; its state "
                f"stays in {directory / 'state.json'}",
            )
        time.sleep(0.1)
    return LocalNode(url, pid, directory)


def _node_process(pid: int, directory: Path) -> bool:
    """Whether `pid` lives and is an anvil on this directory's state file."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # cannot tell: assume it is ours rather than start a second node
    return os.fsencode(directory / "state.json") in argv


def _check_state(directory: Path) -> None:
    """Make `state.json` loadable before anvil reads it: keep a copy of a good one, set a
    truncated one aside and resume from the last good copy."""
    state = directory / "state.json"
    good = directory / "state.last-good.json"
    if not state.exists():
        return
    try:
        json.loads(state.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        stamp = utc_now().replace(":", "").replace("-", "")
        broken = directory / f"state.json.broken-{stamp}"
        os.replace(state, broken)
        if good.exists():
            shutil.copyfile(good, state)
            resumed = f"resuming from {good.name}"
        else:
            resumed = "starting from an empty chain (contracts are deployed again)"
        log.warning(
            "%s: anvil's state file is not valid JSON (%s; a node killed while writing it); "
            "kept it as %s, %s",
            state,
            exc,
            broken.name,
            resumed,
        )
        return
    write_atomically(good, state.read_bytes())


def _read_anvil_keys(config_out: Path, deadline: float) -> list[str]:
    """The development keys anvil wrote; it may answer RPC before the file is complete."""
    while True:
        try:
            return [str(k) for k in json.loads(config_out.read_text())["private_keys"]]
        except (OSError, ValueError, KeyError) as exc:
            if time.monotonic() > deadline:
                raise DevnetError(f"{config_out}: anvil wrote no usable key list ({exc})") from exc
            time.sleep(0.05)


def stop(directory: Path | None = None, *, timeout_s: float = 15.0) -> bool:
    """SIGTERM the recorded node (anvil then dumps its state); True when one was running."""
    directory = directory or devnet_dir()
    with _locked(directory):
        node = _read_node(directory)
        if not node or not node.get("pid"):
            return False
        pid = int(str(node["pid"]))
        if not _node_process(pid, directory):
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        return True


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap when we are the parent
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def dev_keys(directory: Path | None = None) -> dict[str, str]:
    """Role -> development private key of the local devnet (never printed)."""
    directory = directory or devnet_dir()
    keys = json.loads((directory / "keys.json").read_text(encoding="utf-8"))["private_keys"]
    return {role: str(keys[i]) for role, i in DEV_ROLES.items()}


def contracts_build() -> str:
    """SHA-256 over the creation code of the PoX contracts this package ships."""
    from pox_executor.chain.artifacts import load_artifact

    digest = hashlib.sha256()
    for name in CONTRACTS:
        digest.update(load_artifact(name).bytecode.encode())
    return digest.hexdigest()


def ensure_deployed(node: LocalNode) -> dict[str, str]:
    """Contract addresses on the local node, deploying the PoX contracts once (again when the
    package ships contracts of another build than the deployed ones)."""
    from web3 import Web3

    from pox_executor.chain.deploy import deploy_pox

    with _locked(node.directory):
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        build = contracts_build()
        try:
            addresses = read_deployment(node.deployment_file, expect_chain_id=BLOXBERG_CHAIN_ID)
            recorded = json.loads(node.deployment_file.read_text(encoding="utf-8")).get("build")
            if recorded == build and all(
                w3.eth.get_code(Web3.to_checksum_address(addresses[c])) for c in CONTRACTS
            ):
                return addresses
        except Exception:  # missing, malformed, the state lost the contracts: redeploy
            pass
        pox = deploy_pox(w3, dev_keys(node.directory)["deployer"])
        contracts = {
            "AppRegistry": pox.apps,
            "DatasetRegistry": pox.datasets,
            "WorkerpoolRegistry": pox.workerpools,
            "PocoHub": pox.hub,
            "BatchProofs": pox.batch_proofs,
            "WorkflowRunRegistry": pox.runs,
        }
        addresses = {name: str(c.address) for name, c in contracts.items()}
        write_deployment(
            node.deployment_file,
            BLOXBERG_CHAIN_ID,
            addresses,
            block=int(w3.eth.block_number),
            rpc_url=node.rpc_url,
            build=build,
        )
        return addresses


def _write_json(path: Path, doc: object) -> None:
    write_atomically(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
