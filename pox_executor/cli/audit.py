"""CLI for auditors and labs: `pox lineage`, `dag`, `export`, `diff`, `reproduce` (thin wrappers
over `pox_executor.audit.{graph,lineage,export,diff,reproduce}`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pox_executor.audit.verify import load_verify_policy
from pox_executor.errors import PoxError, UsageError
from pox_executor.provenance.bundle import RUN_ARGUMENT_HELP, resolve_run


def _verification_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-simulated",
        action="store_true",
        help="count records with simulated (sim-report) evidence as verified (integrity only)",
    )
    p.add_argument("--policy", type=Path, help="attestation policy file, as `pox verify`")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lineage", help="the jobs and files FILE depends on (--up) or that depend on it (--down)"
    )
    p.add_argument("file", help="a file of the working directory (recorded name or path)")
    p.add_argument("--run", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--up", dest="direction", action="store_const", const="up", default="up")
    way.add_argument("--down", dest="direction", action="store_const", const="down")
    p.add_argument("--format", choices=("text", "json", "dot"), default="text")
    _verification_options(p)
    p.set_defaults(handler=_lineage)

    p = subparsers.add_parser("dag", help="a run's job DAG as DOT, JSON or Mermaid")
    p.add_argument("run", nargs="?", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument("--format", choices=("dot", "json", "mermaid"), default="dot")
    _verification_options(p)
    p.set_defaults(handler=_dag)

    p = subparsers.add_parser(
        "export", help="a run as a Provenance Run Crate, W3C PROV (JSON or N) or in-toto bundle"
    )
    p.add_argument("run", nargs="?", help=RUN_ARGUMENT_HELP)
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument(
        "--format",
        choices=("rocrate", "prov", "provn", "intoto"),
        default="rocrate",
        help="rocrate (a directory), prov (PROV-JSON), provn (PROV-N), intoto (the log as is)",
    )
    p.add_argument("-o", "--output", type=Path, help="where to write (must not exist)")
    p.add_argument("--license", help="URL of the workflow's license, for the crate")
    _verification_options(p)
    p.set_defaults(handler=_export)

    p = subparsers.add_parser(
        "diff", help="job by job, what changed between two runs and which job diverged first"
    )
    p.add_argument("run_a", help="run id (or prefix) or bundle directory")
    p.add_argument("run_b", help="run id (or prefix) or bundle directory")
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_diff)

    p = subparsers.add_parser(
        "reproduce", help="re-run a recorded run (or exported crate) in a fresh directory, compare"
    )
    p.add_argument("run", help="run id (or prefix), bundle directory, or crate from pox export")
    p.add_argument("-C", "--directory", type=Path, default=Path("."), help="working directory")
    p.add_argument("--in", dest="into", type=Path, help="fresh directory to re-run in")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores for the re-run")
    p.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="a --config value the recorded run withheld (its key looks like a secret); checked "
        "against the recorded SHA-256. Recorded values are replayed without this",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_reproduce)


def _graph(args: argparse.Namespace, run: str | None) -> tuple[Any, Any]:
    from pox_executor.audit.graph import run_graph

    policy = load_verify_policy(args.policy) if args.policy is not None else None
    bundle = resolve_run(run, args.directory.resolve())
    graph = run_graph(bundle, allow_simulated=args.allow_simulated, policy=policy)
    return bundle, graph


def _lineage(args: argparse.Namespace) -> int:
    from pox_executor.audit import lineage as lin

    bundle, graph = _graph(args, args.run)
    start, notes = lin.resolve_file(graph, args.file, workdir=bundle.workdir, run_id=bundle.run_id)
    result = lin.lineage(graph, start, direction=args.direction, run_id=bundle.run_id)
    result.notes += notes
    if args.format == "json":
        print(lin.render_lineage_json(result))
    elif args.format == "dot":
        print(lin.render_dot(result.graph), end="")
    else:
        print(lin.render_text(result))
    return 0


def _dag(args: argparse.Namespace) -> int:
    from pox_executor.audit import lineage as lin

    bundle, graph = _graph(args, args.run)
    dag = lin.run_dag(graph, bundle.run_id)
    if args.format == "json":
        doc = lin.to_json(dag, run_id=bundle.run_id, run=graph.graph["runs"][bundle.run_id])
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    elif args.format == "mermaid":
        print(lin.render_mermaid(dag), end="")
    else:
        print(lin.render_dot(dag, name=bundle.run_id), end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    from pox_executor.audit.export import default_output, export

    bundle, graph = _graph(args, args.run)
    output = args.output or default_output(bundle.run_id, args.format)
    export(graph, bundle, args.format, output, license=args.license)
    print(f"wrote {output}")
    return 0


def _print_diff(result: Any, as_json: bool) -> int:
    from pox_executor.audit.diff import render_text

    if as_json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        print(render_text(result))
    return 0 if result.identical else 1


def _diff(args: argparse.Namespace) -> int:
    from pox_executor.audit.diff import diff_runs
    from pox_executor.audit.graph import build_graph

    workdir = args.directory.resolve()
    try:
        bundles = [resolve_run(args.run_a, workdir), resolve_run(args.run_b, workdir)]
        graph = build_graph(bundles, verify=False)
    except UsageError:
        raise
    except PoxError as exc:  # an unreadable bundle is unusable input: exit 2
        raise UsageError(str(exc)) from exc
    return _print_diff(diff_runs(graph, bundles[0].run_id, bundles[1].run_id), args.json)


def _reproduce(args: argparse.Namespace) -> int:
    from pox_executor.audit.reproduce import reproduce

    supplied: dict[str, str] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--config {item!r}: expected KEY=VALUE")
        supplied[key] = value
    result, into = reproduce(
        args.run,
        workdir=args.directory.resolve(),
        into=args.into,
        cores=args.cores,
        config=supplied,
    )
    if not args.json:
        print(f"re-ran in {into}")
    return _print_diff(result, args.json)
