"""Runs a workflow under Snakemake's local executor and under PoX in the same session, repeatedly.

The machine is shared and its load changes by the second, so absolute times mean little: each
repeat runs every mode back to back (alternating the order between repeats) and the ratio to the
local executor is taken within the repeat. The summary gives min and median over repeats.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
BASELINE = "local"
POX = ["--executor", "pox", "--pox-chain", "none"]  # the chain is bench_chain.py's concern
REPEATS = int(os.environ.get("POX_BENCH_REPEATS", "3"))


def run_snakemake(workdir: Path, args: Sequence[str], cores: int = 2) -> float:
    """Wall time of one `snakemake --cores N ARGS` in `workdir`; raises with its log on failure."""
    start = time.perf_counter()
    result = subprocess.run(
        [SNAKEMAKE, "--cores", str(cores), "--quiet", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        command = " ".join(args)
        raise RuntimeError(f"snakemake {command} failed in {workdir}:\n{result.stdout[-4000:]}")
    return elapsed


def fresh_copy(template: Path, destination: Path) -> Path:
    """A clean copy of a workflow directory (no .snakemake, .pox or previous outputs)."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(template, destination, ignore=shutil.ignore_patterns(".snakemake", ".pox"))
    return destination


def compare(modes: dict[str, Callable[[int], float]], repeats: int = REPEATS) -> dict[str, Any]:
    """Run every mode `repeats` times (each call gets the repeat index); ratios to `local`."""
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    for repeat in range(repeats):
        order = list(modes) if repeat % 2 == 0 else list(reversed(modes))
        for name in order:
            seconds[name].append(modes[name](repeat))
        line = "  ".join(f"{name} {seconds[name][-1]:6.2f} s" for name in modes)
        print(f"  repeat {repeat + 1}/{repeats}: {line}", flush=True)
    ratios = {
        name: [t / b for t, b in zip(seconds[name], seconds[BASELINE], strict=True)]
        for name in modes
        if name != BASELINE
    }
    return {
        "repeats": repeats,
        "seconds": {name: _summary(values) for name, values in seconds.items()},
        "ratio_to_local": {name: _summary(values) for name, values in ratios.items()},
    }


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "each": [round(v, 3) for v in values],
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
    }


def print_ratios(result: dict[str, Any], target: float, aim: float | None = None) -> None:
    for name, ratio in result["ratio_to_local"].items():
        verdict = "meets" if ratio["median"] <= target else "MISSES"
        aim_text = f", aim {aim}x" if aim else ""
        print(
            f"  {name} / local: min {ratio['min']:.3f}x, median {ratio['median']:.3f}x "
            f"({verdict} target {target}x{aim_text})"
        )
