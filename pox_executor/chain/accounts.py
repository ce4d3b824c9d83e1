"""The three chain accounts a run uses: requester, workerpool owner (scheduler) and worker.

Owns where their keys come from: on the local devnet, anvil's funded development keys without
asking; on every other profile, encrypted JSON keystores (eth-account, scrypt) named
`<role>.json` in the profile's keystore directory, unlocked with the passphrase from
`$POX_<ROLE>_PASSPHRASE`, else `$POX_KEYSTORE_PASSPHRASE`, else a prompt on the terminal.
Private keys stay in memory: nothing here prints, logs or writes one unencrypted.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account

from pox_executor.chain.profiles import Profile
from pox_executor.errors import PoxError

ROLES = ("requester", "scheduler", "worker")


class AccountError(PoxError):
    """A keystore is missing, or its passphrase is wrong or unavailable."""


@dataclass(frozen=True)
class Accounts:
    keys: dict[str, str] = field(repr=False)

    def key(self, role: str) -> str:
        return self.keys[role]

    def address(self, role: str) -> str:
        return str(Account.from_key(self.keys[role]).address)


def passphrase_for(role: str, *, prompt: bool = True) -> str:
    for var in (f"POX_{role.upper()}_PASSPHRASE", "POX_KEYSTORE_PASSPHRASE"):
        value = os.environ.get(var)
        if value is not None:
            return value
    if prompt and sys.stdin.isatty():
        return getpass.getpass(f"passphrase for the {role} keystore: ")
    raise AccountError(
        f"no passphrase for the {role} keystore",
        hint=f"set POX_{role.upper()}_PASSPHRASE or POX_KEYSTORE_PASSPHRASE, or run interactively",
    )


def load_keystore(path: Path, passphrase: str) -> str:
    try:
        encrypted = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AccountError(
            f"{path}: no keystore", hint="create one with `pox chain keys new --chain NAME`"
        ) from exc
    try:
        return "0x" + bytes(Account.decrypt(encrypted, passphrase)).hex()
    except ValueError as exc:
        raise AccountError(f"{path}: wrong passphrase or damaged keystore") from exc


def create_keystore(path: Path, passphrase: str) -> str:
    """Write a new encrypted keystore; return its address."""
    if path.exists():
        raise AccountError(f"{path} already exists; not overwriting a key")
    account = Account.create()
    encrypted = Account.encrypt(account.key, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(encrypted, handle)
    return str(account.address)


def load_accounts(profile: Profile, *, prompt: bool = True) -> Accounts:
    if profile.dev_keys:
        from pox_executor.chain.localnet import dev_keys

        keys = dev_keys()
        return Accounts({r: keys[r] for r in ROLES})
    if profile.keystore_dir is None:
        raise AccountError(f"chain profile {profile.name!r} names no keystore directory")
    return Accounts(
        {
            role: load_keystore(
                profile.keystore_dir / f"{role}.json", passphrase_for(role, prompt=prompt)
            )
            for role in ROLES
        }
    )
