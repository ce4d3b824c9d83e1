"""Per-job wall-time overhead of the `docker` backend relative to `sim`, and image build times.

Runs a generated workflow of N small independent jobs (plus the `all` target) under
`snakemake --executor pox --cores 2`, once with `--pox-backend sim` and once with
`--pox-backend docker` (every rule in `pox/python`), and compares the mean per-job wall time
(start to finish of each job's isolated command, from the job statements) and the whole-run wall
time. Image build times come from the build records, or from fresh builds with `--rebuild`.
Prints the ratio and writes benchmarks/results/docker.json.

    .venv/bin/python benchmarks/bench_docker.py [--jobs 12] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from pox_executor.enclave import images as img
from pox_executor.enclave.images import cache, recipes
from pox_executor.provenance.records import JobRecord, read_entries

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results" / "docker.json"

SNAKEFILE = """
container: "pox/python"
N = {n}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule step:
    output: "out/{{i}}.txt"
    shell: "echo step {{wildcards.i}} > {{output}}"
"""


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_backend(backend: str, jobs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"pox-bench-{backend}-") as tmp:
        workdir = Path(tmp)
        (workdir / "Snakefile").write_text(SNAKEFILE.format(n=jobs))
        argv = [str(BIN / "snakemake"), "--executor", "pox", "--pox-backend", backend]
        argv += ["--pox-chain", "none"]  # measures the backend, not the chain
        started = time.monotonic()
        run = subprocess.run(
            [*argv, "--cores", "2"], cwd=workdir, capture_output=True, text=True, timeout=1800
        )
        wall = time.monotonic() - started
        if run.returncode != 0:
            raise SystemExit(f"{backend} run failed:\n{run.stderr[-3000:]}")
        (bundle,) = list((workdir / ".pox" / "runs").iterdir())
        durations = []
        for entry in read_entries(bundle / "attestations.intoto.jsonl"):
            if isinstance(entry, JobRecord):  # the log also holds session opens and closes
                meta = entry.statement["predicate"]["runDetails"]["metadata"]
                durations.append(_time(meta["finishedOn"]) - _time(meta["startedOn"]))
    return {
        "jobs": len(durations),
        "run_wall_s": round(wall, 3),
        "job_mean_s": round(statistics.mean(durations), 4),
        "job_median_s": round(statistics.median(durations), 4),
        "job_max_s": round(max(durations), 4),
    }


def build_times(rebuild: bool) -> dict[str, dict[str, object]]:
    result: dict[str, dict[str, object]] = {}
    for name in img.recipe_names():
        info = img.build_image(name, force=rebuild)
        record = cache.load_record(
            cache.build_entry(name, recipes.recipe_digest(recipes.load_recipe(name)))
        )
        result[name] = {
            "measurement": info.measurement,
            "size_mb": round(info.size_bytes / 1e6, 1),
            "build_s": info.build_seconds
            if info.build_seconds is not None
            else (record or {}).get("build_seconds"),
            "fresh_build": not info.cached,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--rebuild", action="store_true", help="time fresh builds of all images")
    args = parser.parse_args()
    subprocess.run(["bash", str(REPO / "scripts" / "start-dockerd.sh")], check=True)
    builds = build_times(args.rebuild)
    sim = run_backend("sim", args.jobs)
    docker = run_backend("docker", args.jobs)
    ratio = docker["job_mean_s"] / sim["job_mean_s"]
    result = {
        "benchmark": "docker-vs-sim",
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "workflow": f"{args.jobs} shell jobs + all, --cores 2",
        "sim": sim,
        "docker": docker,
        "per_job_overhead_ratio": round(ratio, 2),
        "per_job_overhead_s": round(docker["job_mean_s"] - sim["job_mean_s"], 3),
        "run_wall_ratio": round(docker["run_wall_s"] / sim["run_wall_s"], 2),
        "image_builds": builds,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"per-job wall time: sim {sim['job_mean_s']:.2f} s, docker {docker['job_mean_s']:.2f} s "
        f"-> docker/sim = {ratio:.2f}x (+{result['per_job_overhead_s']:.2f} s per job)"
    )
    print(
        f"whole run ({args.jobs} jobs): sim {sim['run_wall_s']:.1f} s, docker "
        f"{docker['run_wall_s']:.1f} s -> {result['run_wall_ratio']:.2f}x"
    )
    for name, b in builds.items():
        fresh = "fresh" if b["fresh_build"] else "recorded"
        print(f"image {name:<6} {b['size_mb']:>6} MB  build {b['build_s']} s ({fresh})")
    print(f"results: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
