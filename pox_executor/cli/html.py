"""CLI: `pox html [RUN] -o PAGE`: the run explorer, one self-contained HTML file (thin layer)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pox_executor.audit.html import write_page
from pox_executor.cli.runs import verified_run
from pox_executor.provenance.bundle import RUN_ARGUMENT_HELP


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "html",
        help="write a self-contained HTML page to explore a run (DAG, search, per-job panels)",
    )
    p.add_argument("run", nargs="?", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument(
        "-o", "--output", type=Path, help="the page to write (default: pox-<run-id>.html)"
    )
    p.add_argument("--force", action="store_true", help="replace the page if it exists")
    p.add_argument(
        "--allow-simulated",
        action="store_true",
        help="verify as `pox verify --allow-simulated` (the page still marks simulated evidence)",
    )
    p.add_argument(
        "--allow-incomplete", action="store_true", help="accept a run without a signed closing"
    )
    p.add_argument("--policy", type=Path, help="attestation policy file, as `pox verify`")
    p.add_argument("--no-files", action="store_true", help="do not check files on disk")
    p.add_argument(
        "--check-external", action="store_true", help="also read external: files recorded"
    )
    p.add_argument(
        "--offline", action="store_true", help="skip the on-chain checks (anchor, tasks, deals)"
    )
    p.add_argument("--chain", help="chain profile to check against (default: the run's)")
    p.set_defaults(handler=_html)


def _html(args: argparse.Namespace) -> int:
    bundle, report = verified_run(args)
    output: Path = args.output or Path(f"pox-{bundle.run_id}.html")
    write_page(bundle, report, output, force=args.force)
    verdict = "OK" if report.ok else f"FAILED ({len(report.errors)} errors)"
    print(f"wrote {output} ({report.subject}, verification {verdict})")
    return 0
