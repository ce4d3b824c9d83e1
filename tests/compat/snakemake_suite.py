"""Snakemake's own test suite as a compatibility yardstick: fetch it, run it, tabulate it.

Owns the mechanics `make compat` (scripts/compat.py) and the CI subset (tests/compat) share:
- the tests of the *installed* Snakemake release, taken from its source distribution on PyPI
  (`pip download snakemake==X --no-deps --no-binary :all:`), cached under `~/.cache/pox-compat`
  (`POX_COMPAT_CACHE` overrides it);
- one pytest run of a selection of those tests with one executor (`local` or `pox`), through
  Snakemake's own `tests/common.py::run(...)`; `pox_compat_plugin` swaps the executor and
  writes one record per test;
- the per-test table (test, local, pox, cause) and the pass rate: of the tests that pass with
  the local executor, the share that pass with pox.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The suite's files that drive workflows through `common.run` (the rest are unit tests of
#: Snakemake's internals, which no executor touches).
SUITE_FILES = ("tests/tests.py", "tests/test_logging.py", "tests/test_jupyter_notebook_pathlike.py")


class CompatError(Exception):
    """The suite could not be fetched or run; the message says what to do."""


def installed_snakemake() -> str:
    return distribution_version("snakemake")


def cache_dir() -> Path:
    configured = os.environ.get("POX_COMPAT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "pox-compat"


def ensure_sdist(version: str, cache: Path | None = None) -> Path:
    """The cached `snakemake-VERSION.tar.gz`, downloaded from PyPI by pip when missing."""
    cache = cache or cache_dir()
    target = cache / f"snakemake-{version}.tar.gz"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", f"snakemake=={version}",
        "--no-deps", "--no-binary", ":all:", "--no-build-isolation", "-d", str(cache),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not target.is_file():
        raise CompatError(
            f"could not download the source distribution of snakemake {version} from PyPI "
            f"into {cache} ({' '.join(command)}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return target


def extract(sdist: Path, dest: Path) -> Path:
    """A fresh copy of the sdist's tree (tests write into their own directories) under `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(dest, filter="data")
    roots = [p for p in dest.iterdir() if p.is_dir()]
    if len(roots) != 1 or not (roots[0] / "tests" / "common.py").is_file():
        raise CompatError(f"{sdist}: no tests/common.py in the source distribution")
    return roots[0]


@dataclass(frozen=True)
class SuiteRun:
    executor: str
    tests: dict[str, dict[str, Any]]
    excluded: dict[str, str]
    seconds: float
    returncode: int
    output_tail: str


def run_suite(
    source_root: Path,
    executor: str,
    results: Path,
    *,
    select: list[str] | None = None,
    keyword: str | None = None,
    timeout_per_test: int = 600,
    scratch: Path | None = None,
) -> SuiteRun:
    """Run the selection (`select`: test names; default all) with `executor`; read the records."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # the suite's CI switches stay off
    env.update(
        POX_COMPAT_EXECUTOR=executor,
        POX_COMPAT_RESULTS=str(results),
        # POX_COMPAT_CODE: a snapshot of the PoX tree to measure (edits during a long run then
        # do not change what is measured).
        PYTHONPATH=os.pathsep.join(
            [p for p in (os.environ.get("POX_COMPAT_CODE"), str(HERE), str(source_root)) if p]
        ),
    )
    if scratch is not None:
        # Opt-in: Snakemake's source cache and every test's directory in the scratch area. By
        # default both stay where a user's would be (~/.cache, /tmp), the measured case.
        (scratch / "xdg-cache").mkdir(parents=True, exist_ok=True)
        (scratch / "tmp").mkdir(parents=True, exist_ok=True)
        env.update(XDG_CACHE_HOME=str(scratch / "xdg-cache"), TMPDIR=str(scratch / "tmp"))
    command = [
        sys.executable, "-m", "pytest", "-p", "pox_compat_plugin", "-p", "no:cacheprovider",
        "-o", "addopts=", "-q", "--no-header", "-rN", f"--timeout={timeout_per_test}",
        "--rootdir", str(source_root), *SUITE_FILES,
    ]  # fmt: skip
    if select is not None:
        command[-len(SUITE_FILES) :] = [f"{_file_of(source_root, name)}::{name}" for name in select]
    if keyword:
        command += ["-k", keyword]
    if results.exists():
        results.unlink()
    started = time.monotonic()
    process = subprocess.run(command, cwd=source_root, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if not results.is_file():
        raise CompatError(
            f"pytest wrote no results ({' '.join(command)} in {source_root}):\n"
            f"{process.stdout[-3000:]}{process.stderr[-3000:]}"
        )
    document = json.loads(results.read_text(encoding="utf-8"))
    return SuiteRun(
        executor=executor,
        tests=document["tests"],
        excluded=document["excluded"],
        seconds=seconds,
        returncode=process.returncode,
        output_tail=process.stdout[-5000:] + process.stderr[-2000:],
    )


_FILE_INDEX: dict[Path, dict[str, str]] = {}


def _file_of(source_root: Path, name: str) -> str:
    """The suite file defining test `name` (parametrized names keep their `[...]`)."""
    index = _FILE_INDEX.get(source_root)
    if index is None:
        index = {}
        for relative in SUITE_FILES:
            for line in (source_root / relative).read_text(encoding="utf-8").splitlines():
                if line.startswith(("def test", "async def test")):
                    index[line.split("def ", 1)[1].split("(", 1)[0]] = relative
        _FILE_INDEX[source_root] = index
    base = name.split("[", 1)[0]
    if base not in index:
        raise CompatError(f"test {name!r} is not in {', '.join(SUITE_FILES)} of {source_root}")
    return index[base]


def load_causes(path: Path) -> dict[str, str]:
    """Documented causes of known pox-only failures: `{test: cause}` (tests/compat/causes.json)."""
    if not path.is_file():
        return {}
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in document.items()
    ):
        raise CompatError(f"{path}: expected one JSON object mapping test names to causes")
    return document


def tabulate(
    local: SuiteRun, pox: SuiteRun, causes: dict[str, str], *, version: str
) -> dict[str, Any]:
    """The per-test table and the figures, as one JSON-ready document."""
    names = sorted(set(local.tests) | set(pox.tests))
    rows = []
    for name in names:
        here = local.tests.get(name, {"outcome": "missing", "cause": ""})
        there = pox.tests.get(name, {"outcome": "missing", "cause": ""})
        cause = ""
        if here["outcome"] == "passed" and there["outcome"] != "passed":
            cause = causes.get(name) or there.get("cause") or there["outcome"]
        elif here["outcome"] != "passed":
            cause = "fails with the local executor too: " + (here.get("cause") or "")[:160]
        rows.append(
            {
                "test": name,
                "local": here["outcome"],
                "pox": there["outcome"],
                "cause": cause,
                "local_seconds": here.get("seconds"),
                "pox_seconds": there.get("seconds"),
            }
        )
    local_passed = [r for r in rows if r["local"] == "passed"]
    both = [r for r in local_passed if r["pox"] == "passed"]
    return {
        "snakemake_tests": version,
        "snakemake_installed": installed_snakemake(),
        "selected": len(rows),
        "excluded": dict(sorted(local.excluded.items())),
        "local_passed": len(local_passed),
        "pox_passed_of_local": len(both),
        "pox_passed": sum(r["pox"] == "passed" for r in rows),
        "rate": round(len(both) / len(local_passed), 4) if local_passed else 0.0,
        "seconds": {"local": round(local.seconds, 1), "pox": round(pox.seconds, 1)},
        "rows": rows,
    }


def render_markdown(table: dict[str, Any]) -> str:
    lines = [
        "# Snakemake's test suite under `--executor pox`",
        "",
        f"Tests of snakemake {table['snakemake_tests']} run against snakemake "
        f"{table['snakemake_installed']}; {table['selected']} selected, "
        f"{len(table['excluded'])} excluded.",
        "",
        f"- pass with the local executor: {table['local_passed']}",
        f"- of those, pass with pox: {table['pox_passed_of_local']} ({100 * table['rate']:.1f}%)",
        f"- elapsed: local {table['seconds']['local']:.0f} s, pox {table['seconds']['pox']:.0f} s",
        "",
        "| test | local | pox | cause |",
        "|---|---|---|---|",
    ]
    for row in table["rows"]:
        cause = row["cause"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['test']} | {row['local']} | {row['pox']} | {cause} |")
    lines += ["", "## Excluded", "", "| test | needs |", "|---|---|"]
    lines += [f"| {name} | {why} |" for name, why in table["excluded"].items()]
    return "\n".join(lines) + "\n"
