"""PoX over SLURM against the plain SLURM executor plugin: `--jobs` (default 500) short jobs.

Both run in the same invocation on the same one-machine cluster (scripts/slurm-up.sh: two slurmd
nodes of 8 CPUs each, no slurmdbd), each in a fresh copy of a synthetic workflow of trivial shell
jobs, 64 at a time:

- plain: `snakemake --executor slurm` (snakemake-executor-plugin-slurm) with
  `--slurm-status-command squeue` (its documented setting for clusters without accounting
  storage, so no slurmdbd/MariaDB is needed) and `--slurm-init-seconds-before-status-checks 1`;
- pox: `snakemake --executor pox --pox-dispatch slurm --pox-chain none` (sim backend), then
  `pox verify` checks that the run holds every job exactly once.

The plain plugin's job step drops every `SLURM_*` variable, `SLURM_CONF` included, before its
inner `srun`, so srun only finds the cluster's configuration at the default path: for the plain
half the script links /etc/slurm/slurm.conf to the test cluster's (only if no file is there, and
removes the link afterwards). Prints wall times and the ratio pox / plain; writes
benchmarks/results/slurm.json. `POX_BENCH_REPEATS` repeats both (default 1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def synthetic_snakefile(jobs: int) -> str:
    return (
        f'rule all:\n    input: expand("out/{{i}}.txt", i=range({jobs}))\n'
        'rule make:\n    output: "out/{i}.txt"\n    shell: "echo {wildcards.i} > {output}"\n'
    )


def workflow(parent: Path, name: str, jobs: int) -> Path:
    target = parent / name
    target.mkdir()
    (target / "Snakefile").write_text(synthetic_snakefile(jobs))
    return target


@contextmanager
def default_conf(conf: Path) -> Iterator[None]:
    """/etc/slurm/slurm.conf -> the test cluster's, for the duration (never over a real file)."""
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        if DEFAULT_CONF.resolve() != conf.resolve():
            sys.exit(
                f"bench_slurm: {DEFAULT_CONF} exists and is not this cluster's; not touching it"
            )
        yield
        return
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)
    try:
        yield
    finally:
        DEFAULT_CONF.unlink()


def timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_slurm: {' '.join(argv[:6])}... failed; see {log}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=64)
    args = parser.parse_args()
    repeats = int(os.environ.get("POX_BENCH_REPEATS", "1"))
    python = sys.executable
    snakemake = [python, "-m", "snakemake", "--executor"]
    pox_argv = [*snakemake, "pox", "--pox-dispatch", "slurm", "--pox-chain", "none"]
    pox_argv += ["--cores", str(args.parallel)]
    plain_argv = [*snakemake, "slurm", "--slurm-status-command", "squeue", "--slurm-no-account"]
    plain_argv += ["--slurm-init-seconds-before-status-checks", "1"]
    plain_argv += ["--jobs", str(args.parallel), "--latency-wait", "10"]
    with tempfile.TemporaryDirectory(prefix="pox-bench-slurm-") as tmp:
        base = Path(tmp)
        state = base / "cluster"
        subprocess.run(["bash", str(ROOT / "scripts" / "slurm-up.sh"), str(state)], check=True)
        conf = state / "slurm.conf"
        env = dict(os.environ, SLURM_CONF=str(conf), XDG_CACHE_HOME=str(base / "cache"))
        rows = []
        try:
            for repeat in range(repeats):
                plain_dir = workflow(base, f"plain{repeat}", args.jobs)
                pox_dir = workflow(base, f"pox{repeat}", args.jobs)
                pox_s = timed(
                    pox_argv,
                    pox_dir,
                    env,
                    base / f"pox{repeat}.log",
                )
                print(f"repeat {repeat + 1}: pox over SLURM: {pox_s:.1f} s", flush=True)
                with default_conf(conf):
                    plain_s = timed(
                        plain_argv,
                        plain_dir,
                        env,
                        base / f"plain{repeat}.log",
                    )
                verify = subprocess.run(
                    [python, "-m", "pox_executor.cli", "verify", "--allow-simulated", "--json"],
                    cwd=pox_dir,
                    capture_output=True,
                    text=True,
                )
                if verify.returncode != 0:
                    sys.exit(f"bench_slurm: pox verify failed:\n{verify.stdout[-3000:]}")
                produced = len(list((pox_dir / "out").iterdir()))
                if produced != args.jobs:
                    sys.exit(f"bench_slurm: pox produced {produced} of {args.jobs} outputs")
                ratio = pox_s / plain_s
                rows.append({"plain_s": plain_s, "pox_s": pox_s, "ratio": ratio})
                print(
                    f"repeat {repeat + 1}: {args.jobs} jobs: plain SLURM plugin {plain_s:.1f} s, "
                    f"pox over SLURM {pox_s:.1f} s: ratio pox/plain {ratio:.2f}x "
                    f"({pox_s / args.jobs * 1000:.0f} vs {plain_s / args.jobs * 1000:.0f} ms/job)"
                )
        finally:
            subprocess.run(
                ["scancel", "--full", "--partition", "pox"], env=env, capture_output=True
            )
            subprocess.run(["bash", str(ROOT / "scripts" / "slurm-down.sh"), str(state)])
    ratios = sorted(r["ratio"] for r in rows)
    write_results(
        "slurm",
        {
            "jobs": args.jobs,
            "parallel": args.parallel,
            "repeats": rows,
            "ratio_min": ratios[0],
            "ratio_median": ratios[len(ratios) // 2],
            "load_average": os.getloadavg(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
