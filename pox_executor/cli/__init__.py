"""The `pox` command: a thin argparse layer over library functions.

Each sub-command lives in its own module exposing `register(subparsers)`; the handler it installs
returns an exit code (0 ok, 1 a check failed, 2 usage error). No logic lives only here: handlers
call library functions that tests call directly. `PoxError`s are printed with their diagnostics,
never as tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pox_executor import __version__
from pox_executor.errors import PoxError, UsageError

# Sub-command modules, in the order `pox --help` lists them.
_COMMAND_MODULES = (
    "pox_executor.cli.runs",
    "pox_executor.cli.attest",
    "pox_executor.cli.images",
    "pox_executor.cli.chain",
    "pox_executor.cli.audit",
    "pox_executor.cli.sms",
    "pox_executor.cli.jobstep",
    "pox_executor.cli.dataset",
    "pox_executor.cli.html",
)


def build_parser(modules: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pox",
        description="PoX: inspect, verify and prove Snakemake runs executed with --executor pox.",
    )
    parser.add_argument("--version", action="version", version=f"pox {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, modules: Sequence[str] = _COMMAND_MODULES) -> int:
    """`modules`: the sub-command modules to offer (the container's guest client: dataset)."""
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.handler(args)
        return code
    except UsageError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return 2
    except PoxError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`pox show | head`): not an error of ours, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())


def add_cid_profile_option(parser: argparse.ArgumentParser) -> None:
    """`--cid-profile`, shared by the commands that compute IPFS CIDs (dataset, images)."""
    from pox_executor.storage.unixfs import DEFAULT_PROFILE, PROFILES

    parser.add_argument(
        "--cid-profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"CID profile (default {DEFAULT_PROFILE}: `ipfs add --cid-version=1`)",
    )
