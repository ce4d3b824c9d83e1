"""Runs a workflow under Snakemake's local executor and under PoX in the same session, repeatedly.

The machine is shared and its load changes by the second, so absolute times mean little: each
repeat runs every mode back to back (alternating the order between repeats) and the ratio to the
local executor is taken within the repeat. The summary gives min and median over repeats. Besides
wall time, the CPU time (user + system) of the whole process tree is measured: it hardly depends
on how many other programs compete for the cores, so its ratio is the steadier figure. It is
the rusage of the waited children, which misses processes that end inside bubblewrap's PID
namespace (PoX's CPU is undercounted). `POX_BENCH_PERF=1` counts perf's `task-clock` over the
whole tree instead, which sees those too, but perf's inherited counters cost every process
created: a 120-job PoX run took 2.2x the wall time under perf, so use it for workflows with
few processes (the example), not for bench_overhead.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
BASELINE = "local"
POX = ["--executor", "pox", "--pox-chain", "none"]  # the chain is bench_chain.py's concern
REPEATS = int(os.environ.get("POX_BENCH_REPEATS", "3"))


class Timing(NamedTuple):
    wall_s: float
    cpu_s: float  # user + system of the process and every descendant it waited for


PERF = shutil.which("perf") if os.environ.get("POX_BENCH_PERF") == "1" else None
CPU_SOURCE = "perf task-clock" if PERF else "rusage of waited children"


def run_snakemake(workdir: Path, args: Sequence[str], cores: int = 2) -> Timing:
    """Times one `snakemake --cores N ARGS` in `workdir`; raises with its log on failure."""
    command = [SNAKEMAKE, "--cores", str(cores), "--quiet", *args]
    with tempfile.TemporaryDirectory(prefix="pox-bench-perf-") as tmp:
        counts = Path(tmp) / "perf.csv"
        if PERF:
            command = [PERF, "stat", "-x,", "-e", "task-clock", "-o", str(counts), *command]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(
            command,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if PERF and result.returncode == 0:
            cpu = _task_clock_s(counts)
    if result.returncode != 0:
        shown = " ".join(args)
        raise RuntimeError(f"snakemake {shown} failed in {workdir}:\n{result.stdout[-4000:]}")
    return Timing(elapsed, cpu)


def _task_clock_s(counts: Path) -> float:
    """Seconds of CPU in `perf stat -x,` output (task-clock is given in milliseconds)."""
    for line in counts.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("task-clock"):
            return float(fields[0]) / 1000
    raise RuntimeError(f"no task-clock count in {counts}: {counts.read_text()[:500]}")


def fresh_copy(template: Path, destination: Path) -> Path:
    """A clean copy of a workflow directory (no .snakemake, .pox or previous outputs: a
    `make demo` leaves `results/` in the example, which made both modes a no-op)."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(
        template, destination, ignore=shutil.ignore_patterns(".snakemake", ".pox", "results")
    )
    return destination


def compare(modes: dict[str, Callable[[int], Timing]], repeats: int = REPEATS) -> dict[str, Any]:
    """Run every mode `repeats` times (each call gets the repeat index); ratios to `local`."""
    timings: dict[str, list[Timing]] = {name: [] for name in modes}
    for repeat in range(repeats):
        order = list(modes) if repeat % 2 == 0 else list(reversed(modes))
        for name in order:
            timings[name].append(modes[name](repeat))
        line = "  ".join(
            f"{name} {timings[name][-1].wall_s:6.2f} s ({timings[name][-1].cpu_s:5.2f} s cpu)"
            for name in modes
        )
        print(f"  repeat {repeat + 1}/{repeats}: {line}", flush=True)
    result: dict[str, Any] = {"repeats": repeats, "cpu_source": CPU_SOURCE}
    for field, key in (("wall_s", "seconds"), ("cpu_s", "cpu_seconds")):
        values = {name: [getattr(t, field) for t in each] for name, each in timings.items()}
        result[key] = {name: _summary(v) for name, v in values.items()}
        ratio_key = "ratio_to_local" if field == "wall_s" else "cpu_ratio_to_local"
        result[ratio_key] = {
            name: _summary([a / b for a, b in zip(v, values[BASELINE], strict=True)])
            for name, v in values.items()
            if name != BASELINE
        }
    return result


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
        cpu = result["cpu_ratio_to_local"][name]
        print(
            f"  {name} / local: wall min {ratio['min']:.3f}x, median {ratio['median']:.3f}x "
            f"({verdict} target {target}x{aim_text}); cpu min {cpu['min']:.3f}x, "
            f"median {cpu['median']:.3f}x"
        )
