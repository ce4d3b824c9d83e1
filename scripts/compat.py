"""`make compat`: Snakemake's own test suite with the local executor and with `--executor pox`.

Takes the tests of the installed Snakemake release from its source distribution on PyPI (cached
under ~/.cache/pox-compat), runs the selection with the local executor and with pox
(`--pox-chain none`, sim backend) through Snakemake's `tests/common.py::run`, and writes the
per-test table (test, local, pox, cause) as markdown and JSON with the pass rate: of the tests
that pass with the local executor here, the share that pass with pox.

The local-executor baseline does not depend on PoX: it is cached per (tests, installed Snakemake)
version and reused unless `--fresh-local` is given.

    .venv/bin/python scripts/compat.py [--out build/compat] [--fresh-local] [-k EXPR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "compat"))

from snakemake_suite import (  # noqa: E402
    CompatError,
    SuiteRun,
    cache_dir,
    ensure_sdist,
    extract,
    installed_snakemake,
    load_causes,
    render_markdown,
    run_suite,
    tabulate,
)


def _baseline_path(version: str) -> Path:
    return cache_dir() / "results" / f"local-{version}-on-{installed_snakemake()}.json"


def _save_baseline(run: SuiteRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"tests": run.tests, "excluded": run.excluded, "seconds": run.seconds}
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _load_baseline(path: Path, executor: str = "local") -> SuiteRun:
    if not path.is_file():
        raise CompatError(f"{path} is missing: run scripts/compat.py --only {executor} first")
    document = json.loads(path.read_text(encoding="utf-8"))
    return SuiteRun(
        executor=executor,
        tests=document["tests"],
        excluded=document["excluded"],
        seconds=float(document["seconds"]),
        returncode=0,
        output_tail="",
    )


def _run_local(sdist: Path, out: Path, version: str, args: argparse.Namespace) -> SuiteRun:
    baseline = _baseline_path(version)
    if baseline.is_file() and not args.fresh_local and not args.keyword:
        local = _load_baseline(baseline)
        print(f"== local executor: reusing {baseline} ({local.seconds:.0f} s when measured)")
        return local
    print(f"== local executor: snakemake {version} tests (long; cached afterwards)")
    source = extract(sdist, out / "local" / "src")
    local = run_suite(
        source,
        "local",
        out / "local.json",
        keyword=args.keyword,
        timeout_per_test=args.timeout,
    )
    if not args.keyword:
        _save_baseline(local, baseline)
    return local


def _run_pox(sdist: Path, out: Path, version: str, args: argparse.Namespace) -> SuiteRun:
    print(f"== pox executor (--pox-chain none, sim backend): snakemake {version} tests")
    source = extract(sdist, out / "pox" / "src")
    pox = run_suite(
        source,
        "pox",
        out / "pox.json",
        keyword=args.keyword,
        timeout_per_test=args.timeout,
    )
    _save_baseline(pox, out / "pox-run.json")
    return pox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests-version", default=None, help="default: installed snakemake")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "compat")
    parser.add_argument("--fresh-local", action="store_true", help="re-run the local baseline")
    parser.add_argument(
        "--only",
        choices=("local", "pox", "table"),
        default=None,
        help="run one executor and keep its result, or tabulate the kept results",
    )
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per test")
    args = parser.parse_args(argv)
    version = args.tests_version or installed_snakemake()
    out: Path = args.out.resolve()
    try:
        sdist = ensure_sdist(version)
        if args.only == "local":
            _run_local(sdist, out, version, args)
            return 0
        if args.only == "pox":
            _run_pox(sdist, out, version, args)
            return 0
        local = _run_local(sdist, out, version, args)
        if args.only == "table":
            pox = _load_baseline(out / "pox-run.json", "pox")
        else:
            pox = _run_pox(sdist, out, version, args)
    except CompatError as exc:
        print(f"compat: {exc}", file=sys.stderr)
        return 2
    causes = load_causes(ROOT / "tests" / "compat" / "causes.json")
    table = tabulate(local, pox, causes, version=version)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compat.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    (out / "compat.md").write_text(render_markdown(table), encoding="utf-8")
    print(
        f"== {table['selected']} selected, {len(table['excluded'])} excluded; "
        f"local passes {table['local_passed']}, pox passes {table['pox_passed_of_local']} "
        f"of those ({100 * table['rate']:.1f}%); local {table['seconds']['local']:.0f} s, "
        f"pox {table['seconds']['pox']:.0f} s"
    )
    print(f"== table: {out / 'compat.md'} and {out / 'compat.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
