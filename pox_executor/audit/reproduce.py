"""`pox reproduce RUN|CRATE [--in DIR]`: re-run a recorded run in a fresh directory and compare.

Owns preparing a reproduction: the run is read from its bundle (a run id or bundle directory,
or a crate written by `pox export`, which embeds the bundle and the files); into a fresh
directory go the recorded workflow sources and the run's raw inputs, each copied only if its
bytes have the recorded SHA-256 (any missing or different file refuses the reproduction, naming
it); the recorded images must be available by digest (the `sim` backend's environment digest
must equal the recorded one; the Docker engine must hold an image with each recorded
measurement, see `_docker_image_problems`). Then Snakemake runs the
workflow under PoX with the recorded backend and the recorded `--config` overrides (values from
the signed session opening; a withheld, secret-looking one must be given again and must match its
recorded digest: `provenance/config_overrides.py`), and `audit/diff.py` compares the new run with
the recorded one job by job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from pox_executor.audit.diff import RunDiff, diff_runs
from pox_executor.audit.graph import build_graph, jobs_of
from pox_executor.errors import PoxError, UsageError, VerificationError
from pox_executor.primitives import sha256_file
from pox_executor.provenance.bundle import RunBundle, list_runs, resolve_run
from pox_executor.provenance.config_overrides import config_arguments
from pox_executor.provenance.names import check_record_name, is_external

CRATE_METADATA = "ro-crate-metadata.json"


@dataclass(frozen=True)
class Plan:
    """What a reproduction needs, read from the recorded run."""

    bundle: RunBundle
    graph: nx.DiGraph
    sources: list[tuple[str, str]]  # (name, sha256)
    inputs: list[tuple[str, str]]
    backend: str
    images: set[str]
    snakefile: str
    config_overrides: dict[str, dict[str, Any]] | None  # None: recorded before overrides were


def load_recorded(target: str, workdir: Path) -> RunBundle:
    """The run to reproduce: RUN (id, prefix, bundle directory) or CRATE (an exported crate)."""
    path = Path(target)
    if (path / CRATE_METADATA).is_file():
        runs = list_runs(path)
        if len(runs) != 1:
            raise UsageError(
                f"{path}: a crate written by `pox export` holds one run under .pox/runs/, "
                f"found {len(runs)}"
            )
        return runs[0]
    return resolve_run(target, workdir)


def plan(bundle: RunBundle) -> Plan:
    graph = build_graph([bundle], verify=False)
    run = graph.graph["runs"][bundle.run_id]
    jobs = jobs_of(graph, bundle.run_id)
    if not jobs:
        raise UsageError(f"run {bundle.run_id} holds no job records: nothing to reproduce")
    produced = {o["name"] for j in jobs for o in graph.nodes[j]["outputs"]}
    inputs: dict[str, str] = {}
    for job in jobs:
        for item in graph.nodes[job]["inputs"]:
            if (
                item["name"] not in produced
                and item["sha256"]
                and not _in_produced_dir(item["name"], produced)
            ):
                inputs.setdefault(item["name"], item["sha256"])
    sources = [(s["name"], s["sha256"]) for s in run["sources"]]
    if not sources:
        raise UsageError(
            f"run {bundle.run_id}: its signed session opening lists no workflow sources"
        )
    from pox_executor.audit.export import _main_snakefile

    return Plan(
        bundle=bundle,
        graph=graph,
        sources=sources,
        inputs=sorted(inputs.items()),
        backend=str(run["backend"] or "sim"),
        images={str(graph.nodes[j]["image_digest"]) for j in jobs},
        snakefile=_main_snakefile(run["sources"]),
        config_overrides=run.get("config_overrides"),
    )


def _in_produced_dir(name: str, produced: set[str]) -> bool:
    return any(name.startswith(p.rstrip("/") + "/") for p in produced)


def prepare(recorded: Plan, into: Path) -> None:
    """Copy sources and raw inputs by digest into `into` (new or empty); refuse on any mismatch."""
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise UsageError(
            f"{into} exists and is not an empty directory; choose a fresh one with --in"
        )
    origin = recorded.bundle.workdir
    problems = []
    copies = []
    for kind, items in (("workflow source", recorded.sources), ("input", recorded.inputs)):
        for name, sha in items:
            if is_external(name):
                problems.append(f"{kind} {name}: outside the working directory; copy it by hand")
                continue
            try:  # the log is not verified here: a name must not lead out of either directory
                check_record_name(name, where=f"{kind} {name!r}")
            except VerificationError as exc:
                problems.append(f"{exc} (it would be copied outside the reproduction directory)")
                continue
            path = origin / name
            if not path.is_file():
                problems.append(f"{kind} {name}: missing in {origin}")
            elif (actual := sha256_file(path)) != sha:
                problems.append(
                    f"{kind} {name}: sha256 {actual[:16]}... differs from the recorded "
                    f"{sha[:16]}..."
                )
            else:
                copies.append((path, into / name))
    problems += _image_problems(recorded)
    if problems:
        raise UsageError(
            f"cannot reproduce run {recorded.bundle.run_id}: " + "; ".join(problems),
            hint="the reproduction needs the recorded bytes; nothing was run",
        )
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _image_problems(recorded: Plan) -> list[str]:
    if recorded.backend == "sim":
        from pox_executor.enclave.backends import create_runtime

        here = create_runtime("sim").image_digest()
        return [
            f"image {image[:23]}...: this machine's sim environment is {here[:23]}... "
            "(interpreter, packages or OS differ)"
            for image in sorted(recorded.images)
            if image != here
        ]
    if recorded.backend == "docker":
        return _docker_image_problems(recorded.images)
    return [f"backend {recorded.backend!r}: reproduction supports the sim and docker backends"]


def _docker_image_problems(images: set[str]) -> list[str]:
    """Each recorded image (`sha256:<measurement>`) must be held by the engine: some local image
    must have that measurement (`engine.measurement_of`: the layer digest of a single-layer
    image, as `pox images build` makes them; else the image id). PoX never pulls."""
    from pox_executor.enclave import engine
    from pox_executor.errors import EnclaveError

    if engine.engine_version() is None:
        return ["the recorded jobs ran in Docker images, and no Docker engine answers"]
    held: dict[str, list[str]] = {}
    try:
        for image_id in sorted({str(i) for i in engine.client().images(quiet=True)}):
            inspected = engine.inspect_image(image_id)
            if inspected is not None:
                names = list(inspected.get("RepoTags") or []) or [image_id[:19]]
                held.setdefault(engine.measurement_of(inspected), []).extend(names)
    except EnclaveError as exc:
        return [f"the Docker engine's images could not be listed ({exc})"]
    return [
        f"image {image}: not present in the Docker engine (no image there has this "
        "measurement; build it with `pox images build NAME` or `docker load` the recorded one)"
        for image in sorted(images)
        if image.removeprefix("sha256:") not in held
    ]


def rerun(
    recorded: Plan,
    into: Path,
    *,
    cores: int = 2,
    timeout_s: float = 3600,
    config_arguments: Sequence[str] = (),
) -> RunBundle:
    """Run the workflow in `into` with `snakemake --executor pox`, the recorded backend and
    `config_arguments` (`KEY=VALUE` for `--config`, see `replay_arguments`)."""
    before = {b.run_id for b in list_runs(into)}
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--executor",
        "pox",
        "--cores",
        str(cores),
        "--snakefile",
        recorded.snakefile,
        "--pox-backend",
        recorded.backend,
        "--pox-new-run",
    ]
    if config_arguments:
        command += ["--config", *config_arguments]
    result = subprocess.run(
        command, cwd=into, env=dict(os.environ), capture_output=True, text=True, timeout=timeout_s
    )
    (into / ".pox").mkdir(exist_ok=True)
    (into / ".pox" / "reproduce.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    new = [b for b in list_runs(into) if b.run_id not in before]
    if not new:
        raise PoxError(
            f"the re-run in {into} recorded no run (snakemake exit {result.returncode}); "
            f"see {into / '.pox' / 'reproduce.log'}"
        )
    return new[-1]


def replay_arguments(recorded: Plan, supplied: Mapping[str, str]) -> list[str]:
    """The `--config` arguments that replay the recorded overrides (UsageError when one cannot
    be replayed: a withheld value not given, or given with another digest)."""
    if recorded.config_overrides is None:
        if supplied:
            raise UsageError(
                f"run {recorded.bundle.run_id} was recorded before PoX recorded --config "
                "overrides: there is nothing to check the values given against"
            )
        return []
    return config_arguments(recorded.config_overrides, supplied)


def reproduce(
    target: str,
    *,
    workdir: Path,
    into: Path | None,
    cores: int = 2,
    config: Mapping[str, str] | None = None,
) -> tuple[RunDiff, Path]:
    """Re-run `target` in `into` and compare; `config` gives withheld `--config` values."""
    bundle = load_recorded(target, workdir)
    recorded = plan(bundle)
    arguments = replay_arguments(recorded, config or {})
    into = into or workdir / f"reproduce-{bundle.run_id}"
    prepare(recorded, into)
    new = rerun(recorded, into, cores=cores, config_arguments=arguments)
    graph = build_graph([bundle, new], verify=False)
    result = diff_runs(graph, bundle.run_id, new.run_id)
    if recorded.config_overrides is None:
        result.notes.append(
            "the recorded run predates recorded --config overrides: the re-run used none "
            "(compare the config digests if the outputs differ)"
        )
    return result, into
