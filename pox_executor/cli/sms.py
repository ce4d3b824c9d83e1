"""`pox sms`: run the key broker (`serve`) and fetch a resource from one as a job would (`fetch`).

This module owns only argument parsing and printing; the broker is `sms.server`, the guest client
`sms.client`. Exit codes: 0 ok, 1 the broker refused or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pox_executor.cli.sms_collateral import register_collateral
from pox_executor.errors import UsageError


def register(subparsers: Any) -> None:
    sms = subparsers.add_parser("sms", help="the key broker: release secrets to attested jobs")
    commands = sms.add_subparsers(dest="sms_command", metavar="ACTION")
    sms.set_defaults(handler=lambda args: _help(sms))
    serve = commands.add_parser(
        "serve",
        help="run the key broker (Trustee KBS 0.4.0 protocol plus PoX's SMS API)",
        description=(
            "Run the key broker on HOST:PORT until interrupted. State (master key, sealed "
            "secrets, policies, challenge keys, release log) lives in --state-dir; the admin "
            "token is --admin-token-file's content, else STATE/admin.token (made 0600)."
        ),
    )
    serve.add_argument("--state-dir", required=True, metavar="DIR", help="broker state directory")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback)"
    )
    serve.add_argument("--port", type=_port, default=8080, help="port (0 picks a free one)")
    serve.add_argument("--admin-token-file", metavar="FILE", help="file holding the admin token")
    serve.add_argument("--chain-rpc", metavar="URL", help="JSON-RPC URL to read dataset owners")
    serve.add_argument("--dataset-registry", metavar="ADDRESS", help="DatasetRegistry address")
    serve.add_argument("--ready-file", metavar="FILE", help="write the broker URL here when ready")
    serve.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    serve.set_defaults(handler=_serve)

    fetch = commands.add_parser(
        "fetch",
        help="attest and fetch one resource, as a job does (prints or writes its plaintext)",
    )
    fetch.add_argument("broker_url", metavar="URL")
    fetch.add_argument("resource", metavar="REPOSITORY/TYPE/TAG")
    fetch.add_argument(
        "--producer",
        default="auto",
        choices=("auto", "sim", "sgx", "tdx", "snp"),
        help="evidence producer (auto: the real TEE, else sim, labelled simulated)",
    )
    fetch.add_argument("--measurement", default="unmeasured", help="image name for sim evidence")
    fetch.add_argument("--task-id", help="PoCo task id to bind into the runtime data")
    fetch.add_argument("--out", metavar="FILE", help="write the plaintext here (created 0600)")
    fetch.set_defaults(handler=_fetch)
    register_collateral(commands)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from pox_executor.sms.broker import BrokerConfig
    from pox_executor.sms.server import serve

    if (args.chain_rpc is None) != (args.dataset_registry is None):
        raise UsageError("--chain-rpc and --dataset-registry go together")
    token = None
    if args.admin_token_file:
        try:
            token = Path(args.admin_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"{args.admin_token_file}: cannot read ({exc.strerror})") from exc
        if not token:
            raise UsageError(f"{args.admin_token_file}: empty admin token")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    serve(
        BrokerConfig(
            state_dir=Path(args.state_dir),
            admin_token=token,
            chain_rpc=args.chain_rpc,
            dataset_registry=args.dataset_registry,
        ),
        host=args.host,
        port=args.port,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        announce=lambda line: print(line, flush=True),
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    import os

    from pox_executor.enclave.producers import detect_producer
    from pox_executor.sms.client import KbsClient
    from pox_executor.sms.protocol import KbsProtocolError, check_resource_path

    try:
        check_resource_path(args.resource)
    except KbsProtocolError as exc:
        raise UsageError(str(exc)) from None
    producer = detect_producer(args.producer, measurement=args.measurement)
    client = KbsClient(args.broker_url, producer=producer, task_id=args.task_id)
    if client.simulated:
        print(
            "pox sms: SIMULATED evidence (sim-report): proves nothing about confidentiality",
            file=sys.stderr,
        )
    value = client.get_resource(args.resource)
    if args.out:
        out = Path(args.out)
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise UsageError(f"{out}: exists; not overwriting") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
        return 0
    sys.stdout.buffer.write(value)
    return 0
