"""Chain profiles: which chain a run is anchored on, and where PoX keeps its per-user chain state.

Owns the profile names (`local`: the self-starting devnet; `bloxberg`: the public chain; `none`:
no chain; any name from the profiles file), the profiles file format (TOML, `$POX_CHAINS_FILE`
or `${XDG_CONFIG_HOME:-~/.config}/pox/chains.toml`), deployment files (JSON: chain id and
contract addresses) and the per-user data directory (`$POX_DATA_DIR` or
`${XDG_DATA_HOME:-~/.local/share}/pox`). Holds no keys and opens no connection.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.errors import PoxError, UsageError

LOCAL = "local"
BLOXBERG = "bloxberg"
NONE = "none"
BLOXBERG_RPC = "https://core.bloxberg.org"
BLOXBERG_EXPLORER_TX = "https://blockexplorer.bloxberg.org/tx/{hash}"
DEFAULT_GAS_PRICE_WEI = 1_000_000_000

#: Contract names a deployment file must give addresses for.
CONTRACTS = (
    "AppRegistry",
    "DatasetRegistry",
    "WorkerpoolRegistry",
    "PocoHub",
    "BatchProofs",
    "WorkflowRunRegistry",
)


class ProfileError(PoxError):
    """A chain profile or deployment file is unknown or malformed."""


def data_dir() -> Path:
    """Per-user PoX data directory (devnet state, nonce locks)."""
    explicit = os.environ.get("POX_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pox"


def config_dir() -> Path:
    """Per-user PoX configuration directory (profiles file, keystores, deployments)."""
    explicit = os.environ.get("POX_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pox"


def profiles_file() -> Path:
    explicit = os.environ.get("POX_CHAINS_FILE")
    return Path(explicit) if explicit else config_dir() / "chains.toml"


@dataclass(frozen=True)
class Profile:
    """Where and how to reach one chain."""

    name: str
    rpc_url: str | None  # None for `local`: the devnet's own URL, known once it runs
    chain_id: int
    gas_price_wei: int = DEFAULT_GAS_PRICE_WEI
    deployment_file: Path | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    explorer_tx: str | None = None
    keystore_dir: Path | None = None
    dev_keys: bool = False  # funded development keys, no keystore (the local devnet)
    prices: dict[str, int] = field(default_factory=dict)  # appprice, workerpoolprice (wei)

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    def explorer_link(self, tx_hash: str) -> str | None:
        if not self.explorer_tx:
            return None
        return self.explorer_tx.format(hash=tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash)

    def load_addresses(self) -> dict[str, str]:
        """Contract addresses: inline ones, else the deployment file's."""
        if self.addresses:
            return dict(self.addresses)
        if self.deployment_file is None:
            raise ProfileError(f"chain profile {self.name!r} names no contract addresses")
        return read_deployment(self.deployment_file, expect_chain_id=self.chain_id)


def read_deployment(path: Path, *, expect_chain_id: int | None = None) -> dict[str, str]:
    """Addresses from a deployment file `{"chain_id": N, "addresses": {Contract: 0x..}}`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError(
            f"{path}: no deployment file",
            hint="deploy with `forge script` (contracts/script/Deploy.s.sol) and record the "
            "addresses there, or name them in the profile's [chains.NAME.addresses]",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not JSON ({exc})") from exc
    if expect_chain_id is not None and int(raw.get("chain_id", -1)) != expect_chain_id:
        raise ProfileError(
            f"{path}: deployment is for chain {raw.get('chain_id')}, not {expect_chain_id}"
        )
    addresses = raw.get("addresses")
    if not isinstance(addresses, dict) or any(c not in addresses for c in CONTRACTS):
        raise ProfileError(f"{path}: 'addresses' must name {', '.join(CONTRACTS)}")
    return {str(k): str(v) for k, v in addresses.items()}


def write_deployment(path: Path, chain_id: int, addresses: dict[str, str], **extra: Any) -> None:
    from pox_executor.primitives import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"chain_id": chain_id, "addresses": addresses, **extra}
    write_atomically(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def builtin_profiles() -> dict[str, Profile]:
    from pox_executor.chain.devnet import BLOXBERG_CHAIN_ID

    return {
        LOCAL: Profile(
            name=LOCAL,
            rpc_url=None,
            chain_id=BLOXBERG_CHAIN_ID,
            deployment_file=data_dir() / "devnet" / "deployment.json",
            dev_keys=True,
        ),
        BLOXBERG: Profile(
            name=BLOXBERG,
            rpc_url=BLOXBERG_RPC,
            chain_id=BLOXBERG_CHAIN_ID,
            deployment_file=config_dir() / "deployments" / "bloxberg.json",
            explorer_tx=BLOXBERG_EXPLORER_TX,
            keystore_dir=config_dir() / "keys" / BLOXBERG,
        ),
    }


def _profile_from_toml(name: str, raw: dict[str, Any], where: Path) -> Profile:
    base = builtin_profiles().get(name)
    try:
        rpc = raw.get("rpc_url", base.rpc_url if base else None)
        if rpc is None and name != LOCAL:
            raise ProfileError(f"{where}: [chains.{name}] needs rpc_url")
        deployment = raw.get("deployment")
        keystores = raw.get("keystore_dir")
        gas_price = raw.get("gas_price_wei")
        if gas_price is None and "gas_price_gwei" in raw:
            gas_price = int(float(raw["gas_price_gwei"]) * 10**9)
        return Profile(
            name=name,
            rpc_url=str(rpc) if rpc is not None else None,
            chain_id=int(raw.get("chain_id", base.chain_id if base else 0)),
            gas_price_wei=int(gas_price if gas_price is not None else DEFAULT_GAS_PRICE_WEI),
            deployment_file=Path(deployment).expanduser()
            if deployment
            else (base.deployment_file if base else None),
            addresses={str(k): str(v) for k, v in dict(raw.get("addresses", {})).items()},
            explorer_tx=raw.get("explorer_tx", base.explorer_tx if base else None),
            keystore_dir=Path(keystores).expanduser()
            if keystores
            else (base.keystore_dir if base else config_dir() / "keys" / name),
            dev_keys=bool(raw.get("dev_keys", base.dev_keys if base else False)),
            prices={str(k): int(v) for k, v in dict(raw.get("prices", {})).items()},
        )
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{where}: [chains.{name}] is malformed ({exc})") from exc


def load_profile(name: str) -> Profile | None:
    """The profile called `name` (None for `none`); the profiles file overrides built-ins."""
    if name == NONE:
        return None
    path = profiles_file()
    if path.exists():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: not TOML ({exc})") from exc
        chains = doc.get("chains", {})
        if name in chains:
            return _profile_from_toml(name, dict(chains[name]), path)
    builtins = builtin_profiles()
    if name in builtins:
        return builtins[name]
    raise UsageError(
        f"unknown chain profile {name!r}",
        hint=f"use local, bloxberg or none, or define [chains.{name}] in {path}",
    )
