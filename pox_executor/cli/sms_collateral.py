"""`pox sms collateral add|list`: fill and show the key broker's offline DCAP collateral cache.

This module owns only argument parsing and printing; the cache is
`enclave.verifiers.collateral_cache.CollateralCache`, kept under the broker's state directory
(`STATE/collateral`), where the running broker reads it for quotes sent without collateral.
Exit codes: 0 ok, 1 the collateral was refused, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pox_executor.errors import UsageError


def register_collateral(commands: Any) -> None:
    """Add `collateral` under `pox sms` (called by `cli.sms.register`)."""
    collateral = commands.add_parser(
        "collateral",
        help="the broker's offline DCAP collateral cache (no PCCS needed)",
        description=(
            "Intel DCAP collateral (TCB info by FMSPC, QE identity, PCK and root CA CRLs) for "
            "quotes that CoCo guests send without it. FILE is a QuoteCollateralV3 JSON, as "
            "`pox attest verify --collateral` reads (dcap-qvl, Intel PCS or a PCCS give it)."
        ),
    )
    actions = collateral.add_subparsers(dest="collateral_command", metavar="ACTION")
    collateral.set_defaults(handler=lambda args: _help(collateral))
    add = actions.add_parser("add", help="split FILE into PCCS-keyed cache entries")
    add.add_argument("file", metavar="FILE", help="DCAP collateral JSON (QuoteCollateralV3)")
    add.add_argument("--state-dir", required=True, metavar="DIR", help="broker state directory")
    add.set_defaults(handler=_add)
    show = actions.add_parser("list", help="list cached entries and when each expires")
    show.add_argument("--state-dir", required=True, metavar="DIR", help="broker state directory")
    show.set_defaults(handler=_list)


def _help(parser: argparse.ArgumentParser) -> int:
    import sys

    parser.print_help(sys.stderr)
    return 2


def _cache(state_dir: str) -> Any:
    from pox_executor.enclave.verifiers import CollateralCache
    from pox_executor.sms.coco_evidence import COLLATERAL_DIR

    root = Path(state_dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"--state-dir {root}: not a directory")
    return CollateralCache(root / COLLATERAL_DIR)


def _add(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from exc
    now = datetime.now(UTC)
    for entry in _cache(args.state_dir).add(document, where=str(path)):
        print(f"{entry.key}: {_validity(entry.issued, entry.next_update, now)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    entries = _cache(args.state_dir).entries()
    if not entries:
        print("collateral cache is empty (pox sms collateral add FILE)")
    for entry in entries:
        print(f"{entry.key}: {_validity(entry.issued, entry.next_update, now)}")
    return 0


def _validity(issued: datetime, next_update: datetime | None, now: datetime) -> str:
    from pox_executor.enclave.verifiers.claims import iso

    if next_update is None:
        return f"issued {iso(issued)}"
    state = "STALE" if next_update <= now else "fresh"
    return f"issued {iso(issued)}, nextUpdate {iso(next_update)} ({state})"
