"""CLI for auditors: `pox runs`, `show`, `verify`, `prove`, `verify-proof` (thin wrappers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pox_executor.audit.findings import Report
from pox_executor.audit.proof import make_proof, verify_file_proof
from pox_executor.audit.show import render_runs, render_summary, summarize
from pox_executor.audit.verify import (
    SIMULATED_SUMMARY,
    STATUS_INCOMPLETE,
    load_verify_policy,
    verify_run,
)
from pox_executor.errors import UsageError
from pox_executor.primitives import FileTooLargeError, read_regular
from pox_executor.provenance.bundle import RUN_ARGUMENT_HELP, RunBundle, resolve_run, scan_runs

_MAX_PROOF_BYTES = 64 * 1024 * 1024


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("runs", help="list the runs recorded under .pox/ here")
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.set_defaults(handler=_runs)

    p = subparsers.add_parser("show", help="summarise a run: jobs per rule, evidence, root, DAG")
    p.add_argument("run", nargs="?", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_show)

    p = subparsers.add_parser(
        "verify", help="verify a run offline: signatures, evidence, links, root, files"
    )
    p.add_argument("run", nargs="?", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument(
        "--allow-simulated",
        action="store_true",
        help="accept simulated (sim-report) evidence: integrity only, no confidentiality",
    )
    p.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="check a run whose log has no signed closing (interrupted); the verdict says so",
    )
    p.add_argument(
        "--policy",
        type=Path,
        help="attestation policy file (allowed measurements, TCB, debug), as `pox attest verify`",
    )
    p.add_argument("--no-files", action="store_true", help="do not check files on disk")
    p.add_argument(
        "--check-external",
        action="store_true",
        help="also read recorded files outside the working directory (external: names)",
    )
    p.add_argument(
        "--offline", action="store_true", help="skip the on-chain checks (anchor, tasks, deals)"
    )
    p.add_argument("--chain", help="chain profile to check against (default: the run's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_verify)

    p = subparsers.add_parser(
        "prove", help="write a self-contained proof that FILE came from a run"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--run", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument("-o", "--output", type=Path, help="proof file (default: FILE.tlog-proof)")
    p.set_defaults(handler=_prove)

    p = subparsers.add_parser("verify-proof", help="check a proof written by `pox prove`")
    p.add_argument("proof", type=Path)
    p.add_argument("file", type=Path, nargs="?", help="also check this file's bytes")
    p.add_argument("--allow-simulated", action="store_true", help="accept simulated evidence")
    p.add_argument("--policy", type=Path, help="attestation policy file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_verify_proof)


def print_report(report: Report, *, as_json: bool, allow_simulated: bool) -> int:
    if as_json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return 0 if report.ok else 1
    for finding in report.findings:
        print(finding.render(), file=sys.stderr if finding.level == "error" else sys.stdout)
    facts = ", ".join(f"{k}={v}" for k, v in report.facts.items() if v is not None)
    verdict = "OK" if report.ok else f"FAILED ({len(report.errors)} errors)"
    if report.ok and report.facts.get("status") == STATUS_INCOMPLETE:
        verdict = "OK so far, but INCOMPLETE (the log has no signed closing)"
    print(f"{report.subject}: {verdict}" + (f"  [{facts}]" if facts else ""))
    if report.ok and report.facts.get("simulated") and allow_simulated:
        print(f"NOTE: {SIMULATED_SUMMARY}")
    return 0 if report.ok else 1


def _runs(args: argparse.Namespace) -> int:
    runs, unreadable = scan_runs(args.directory.resolve())
    print(render_runs(runs, unreadable))
    return 1 if unreadable else 0


def _show(args: argparse.Namespace) -> int:
    summary = summarize(resolve_run(args.run, args.directory.resolve()))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        print(render_summary(summary))
    return 0


def verified_run(args: argparse.Namespace) -> tuple[RunBundle, Report]:
    """The run the arguments name, verified as `pox verify` does (offline unless a chain is
    reachable and `--offline` is not given); shared by `pox verify` and `pox html`."""
    policy = load_verify_policy(args.policy) if args.policy is not None else None
    bundle = resolve_run(args.run, args.directory.resolve())
    report = verify_run(
        bundle,
        allow_simulated=args.allow_simulated,
        allow_incomplete=args.allow_incomplete,
        check_files=not args.no_files,
        check_external=args.check_external,
        policy=policy,
    )
    if not args.offline:
        from pox_executor.audit.chain_check import check_chain

        requester = report.facts.get("requester")
        check_chain(
            bundle,
            report,
            chain=args.chain,
            expected_requester=str(requester) if requester else None,
        )
    return bundle, report


def _verify(args: argparse.Namespace) -> int:
    _, report = verified_run(args)
    return print_report(report, as_json=args.json, allow_simulated=args.allow_simulated)


def _prove(args: argparse.Namespace) -> int:
    bundle = resolve_run(args.run, args.directory.resolve())
    if not args.file.exists():
        raise UsageError(f"{args.file}: no such file")
    output: Path = args.output or args.file.with_name(args.file.name + ".tlog-proof")
    if output.exists():
        raise UsageError(f"{output} already exists; choose another path with -o")
    output.write_text(make_proof(bundle, args.file), encoding="utf-8")
    print(f"wrote {output}")
    return 0


def _verify_proof(args: argparse.Namespace) -> int:
    policy = load_verify_policy(args.policy) if args.policy is not None else None
    try:
        text = read_regular(args.proof, _MAX_PROOF_BYTES).decode("utf-8")
    except FileTooLargeError as exc:
        raise UsageError(
            f"{args.proof}: larger than {_MAX_PROOF_BYTES} bytes; not a proof"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{args.proof}: cannot read proof ({exc})") from exc
    if args.file is not None and not args.file.is_file():
        what = "not a regular file" if args.file.exists() else "no such file"
        raise UsageError(f"{args.file}: {what}")
    report = verify_file_proof(
        text, file=args.file, allow_simulated=args.allow_simulated, policy=policy
    )
    return print_report(report, as_json=args.json, allow_simulated=args.allow_simulated)
