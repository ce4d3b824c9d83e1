"""`pox jobstep TICKET`: run one dispatched job on this node (what a SLURM job script calls).

Argument parsing and the exit code only; the work is `dispatch.node.run_jobstep`. Exit code: the
job's own exit code (0 when it succeeded and its statement was recorded), 2 for a bad ticket.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pox_executor.dispatch.node import run_jobstep_until_signalled
from pox_executor.dispatch.protocol import read_ticket


def register(subparsers: Any) -> None:
    jobstep = subparsers.add_parser(
        "jobstep",
        help="run one dispatched job on this node, sign its statement and deliver it",
        description=(
            "Run the job a head wrote into TICKET (a pox-job-ticket/v1 file on the shared "
            "filesystem) in the ticket's enclave backend, sign its statement with a key bound "
            "into this node's evidence, write it to the spool directory and post it to the "
            "head's collector. Called by the job scripts `--pox-dispatch slurm` submits."
        ),
    )
    jobstep.add_argument("ticket", metavar="TICKET", help="job ticket file written by the head")
    jobstep.set_defaults(handler=_jobstep)


def _jobstep(args: argparse.Namespace) -> int:
    result = run_jobstep_until_signalled(read_ticket(Path(args.ticket)))
    if result.succeeded:
        return 0
    return result.exit_code if 0 < result.exit_code < 256 else 1
