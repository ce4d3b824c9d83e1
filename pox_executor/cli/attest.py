"""`pox attest`: verify TEE evidence (ours or a vendor's native blob) against a policy.

This module owns only argument parsing and printing; reading inputs is
`enclave.verifiers.inputs`, verification is `enclave.verifiers.verify_evidence`. Exit codes: 0 the
evidence is authentic and accepted, 1 it is not (or cannot be checked), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pox_executor.enclave.verifiers import EvidenceReport, load_policy, verify_evidence
from pox_executor.enclave.verifiers.inputs import (
    NATIVE_TYPES,
    load_evidence,
    parse_at,
    parse_report_data,
)
from pox_executor.errors import EvidenceError, UsageError


def register(subparsers: Any) -> None:
    attest = subparsers.add_parser("attest", help="verify TEE evidence (SGX, TDX, SEV-SNP, sim)")
    commands = attest.add_subparsers(dest="attest_command", metavar="ACTION")
    attest.set_defaults(handler=lambda args: _help(attest))
    verify = commands.add_parser(
        "verify",
        help="verify one piece of evidence and apply a policy",
        description=(
            "Verify TEE evidence: signature chain to the vendor root, freshness of the collateral "
            "at --at, report data, debug, measurements and TCB against --policy. Exit 0 only when "
            "the evidence is authentic and accepted."
        ),
    )
    verify.add_argument(
        "evidence", metavar="EVIDENCE", help="evidence envelope JSON, or a native blob (raw or hex)"
    )
    verify.add_argument("--policy", metavar="FILE", help="attestation policy JSON")
    verify.add_argument(
        "--at", metavar="TIME", help="verification time (RFC 3339 or Unix seconds; default now)"
    )
    verify.add_argument("--type", choices=NATIVE_TYPES, help="format of a native blob")
    verify.add_argument("--collateral", metavar="FILE", help="DCAP collateral JSON (SGX/TDX)")
    verify.add_argument("--vcek", metavar="FILE", help="SNP VCEK certificate (DER or PEM)")
    verify.add_argument("--cert-chain", metavar="FILE", help="SNP ASK and ARK certificates (PEM)")
    verify.add_argument(
        "--report-data", metavar="HEX", help="expected 64-byte report data (128 hex characters)"
    )
    verify.add_argument(
        "--allow-simulated",
        action="store_true",
        help="accept sim-report evidence (it proves nothing about confidentiality)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=_verify)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _verify(args: argparse.Namespace) -> int:
    at = parse_at(args.at) if args.at else None
    expected = parse_report_data(args.report_data) if args.report_data else None
    policy = None
    if args.policy:
        try:
            policy = load_policy(args.policy)
        except EvidenceError as exc:
            raise UsageError(str(exc)) from exc
    evidence = load_evidence(
        args.evidence,
        evidence_type=args.type,
        collateral=args.collateral,
        vcek=args.vcek,
        cert_chain=args.cert_chain,
    )
    report = verify_evidence(
        evidence,
        policy=policy,
        at=at,
        expected_report_data=expected,
        allow_simulated=args.allow_simulated,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(render(report))
    return 0 if report.ok else 1


def render(report: EvidenceReport) -> str:
    """The human-readable summary `pox attest verify` prints."""
    data = report.to_json()
    lines = [f"evidence:     {report.type}" + (" (SIMULATED)" if report.simulated else "")]
    lines.append(f"authentic:    {'yes' if report.authentic else 'NO'}")
    for index, (name, value) in enumerate(report.measurements.items()):
        label = "measurement:" if index == 0 else ""
        lines.append(f"{label:<13} {name} {value}")
    lines.append(f"tcb status:   {report.tcb_status or 'n/a'}")
    if report.type == "snp-report":
        tcb = report.details.get("reported_tcb", {})
        lines.append("reported tcb: " + " ".join(f"{name}={value}" for name, value in tcb.items()))
    lines.append(f"advisories:   {', '.join(report.advisories) or 'none'}")
    lines.append(f"debug:        {'YES' if report.debug else 'no'}")
    lines.append(f"report data:  {report.report_data.hex()}")
    window = data["collateral_window"]
    when = data["verified_at"]
    if window:
        when += f" (collateral valid {window['not_before']} .. {window['not_after']})"
    lines.append(f"verified at:  {when}")
    lines.append(f"policy:       {report.details.get('policy_source', '<default policy>')}")
    lines.extend(f"warning:      {warning}" for warning in report.warnings)
    lines.extend(f"FAILED        {failure}" for failure in report.failures)
    lines.append(f"result:       {'ACCEPTED' if report.ok else 'REJECTED'}")
    return "\n".join(lines)
