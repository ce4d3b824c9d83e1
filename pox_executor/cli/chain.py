"""CLI for the chain: `pox chain up|down|status`, `pox chain keys new`, `pox anchor [RUN]`.

Thin wrappers over `pox_executor.chain`: the local devnet's lifecycle, creating encrypted
keystores for a real profile (addresses printed, keys never), and settling a run's pending chain
actions from its journal (the same code the executor runs at the end of a run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pox_executor.errors import UsageError
from pox_executor.provenance.bundle import RUN_ARGUMENT_HELP


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("chain", help="the local devnet and chain accounts")
    sub = p.add_subparsers(dest="chain_command", metavar="ACTION")
    up = sub.add_parser("up", help="start the local devnet (and deploy PoX once)")
    up.set_defaults(handler=_up)
    down = sub.add_parser("down", help="stop the local devnet (its state is kept)")
    down.set_defaults(handler=_down)
    status = sub.add_parser("status", help="is the local devnet running; what is deployed")
    status.add_argument("--chain", default="local", help="profile (default local)")
    status.set_defaults(handler=_status)
    keys = sub.add_parser("keys", help="create encrypted keystores for a profile")
    keys.add_argument("action", choices=["new", "list"])
    keys.add_argument("--chain", required=True, help="profile name, e.g. bloxberg")
    keys.set_defaults(handler=_keys)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    a = subparsers.add_parser(
        "anchor", help="send a run's pending chain actions (deals, anchor); a no-op when done"
    )
    a.add_argument("run", nargs="?", help=RUN_ARGUMENT_HELP)
    a.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    a.add_argument("--chain", help="profile (default: the run's, else local)")
    a.add_argument(
        "--deals", choices=["per-job", "batched", "none"], help="deals mode (default: the run's)"
    )
    a.add_argument("--timeout", type=float, default=120.0, help="seconds to keep retrying")
    a.set_defaults(handler=_anchor)


def _up(args: argparse.Namespace) -> int:
    from pox_executor.chain import localnet

    node = localnet.start()
    addresses = localnet.ensure_deployed(node)
    print(
        f"local devnet: {node.rpc_url} (pid {node.pid}), chain id 8995, state in {node.directory}"
    )
    for name, address in sorted(addresses.items()):
        print(f"  {name:<20} {address}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from pox_executor.chain import localnet

    stopped = localnet.stop()
    print("local devnet stopped" if stopped else "local devnet was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    from pox_executor.chain import localnet
    from pox_executor.chain.profiles import load_profile

    if args.chain != "local":
        profile = load_profile(args.chain)
        if profile is None:
            print("chain: none")
            return 0
        print(f"chain {profile.name}: {profile.rpc_url} (chain id {profile.chain_id})")
        for name, address in sorted(profile.load_addresses().items()):
            print(f"  {name:<20} {address}")
        return 0
    node = localnet.status()
    if node is None:
        print(f"local devnet: not running (state in {localnet.devnet_dir()}); `pox chain up`")
        return 1
    print(f"local devnet: running at {node.rpc_url} (pid {node.pid}), state in {node.directory}")
    try:
        from pox_executor.chain.profiles import read_deployment

        for name, address in sorted(read_deployment(node.deployment_file).items()):
            print(f"  {name:<20} {address}")
    except Exception:
        print("  PoX contracts: not deployed yet (deployed on first use)")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from pox_executor.chain.accounts import ROLES, create_keystore, passphrase_for
    from pox_executor.chain.profiles import load_profile

    profile = load_profile(args.chain)
    if profile is None or profile.dev_keys or profile.keystore_dir is None:
        raise UsageError(f"profile {args.chain!r} uses no keystores")
    import json

    from eth_utils.address import to_checksum_address

    for role in ROLES:
        path = profile.keystore_dir / f"{role}.json"
        if args.action == "new":
            address = create_keystore(path, passphrase_for(role))
        elif path.exists():
            address = to_checksum_address("0x" + json.loads(path.read_text())["address"])
        else:
            address = "(none)"
        print(f"{role:<10} {address}  {path}")
    return 0


def _anchor(args: argparse.Namespace) -> int:
    from pox_executor.chain.client import connect
    from pox_executor.chain.settle import resolve_anchor_target, settle

    target = resolve_anchor_target(
        args.run, args.directory.resolve(), chain=args.chain, deals=args.deals
    )
    profile, bundle = target.profile, target.bundle
    deadline = time.monotonic() + args.timeout
    client = connect(profile, deadline=deadline)
    result = settle(bundle, client, deals=target.deals, deadline=deadline)
    print(
        f"run {bundle.run_id} on {profile.name}: {result.sent} sent, {result.noop} already on "
        f"chain, {result.pending} pending"
    )
    for tx in result.txs:
        link = profile.explorer_link(tx["tx_hash"])
        print(
            f"  {tx['kind']:<16} {tx['tx_hash']}  gas {tx['gas']:,}" + (f"  {link}" if link else "")
        )
    if result.error:
        print(f"error: {result.error}")
        return 1
    return 0
