"""The run bundle on disk: `.pox/runs/<run-id>/` with run.json, the log, its checkpoint, logs/.

This module owns the layout and `run.json` (format `pox-run/v1`): run id, Snakemake version,
workflow sources and config digests, DAG edges, settings, and one entry per session (a resumed run
adds a session with fresh keys). It finds runs (`list_runs`, `resolve_run`) and decides whether
an interrupted run can be resumed (its writer's lock is free). run.json is replaced atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pox_executor.errors import BundleError, UsageError
from pox_executor.primitives import write_atomically
from pox_executor.provenance.log import ATTESTATIONS_FILE, CHECKPOINT_FILE

RUN_FORMAT = "pox-run/v1"
POX_DIR = ".pox"
RUNS_DIR = "runs"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"

STATUS_RUNNING = "running"
STATUS_SUCCEEDED = "succeeded"
STATUS_FAILED = "failed"


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def origin_for(run_id: str) -> str:
    return f"pox/run/{run_id}"


def runs_root(workdir: Path) -> Path:
    return workdir / POX_DIR / RUNS_DIR


@dataclass
class RunBundle:
    """One run directory. `meta` is the parsed run.json."""

    path: Path
    meta: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])

    @property
    def attestations_path(self) -> Path:
        return self.path / ATTESTATIONS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def workdir(self) -> Path:
        """The working directory the run's relative paths refer to (the bundle's grandparent)."""
        return self.path.parent.parent.parent

    def save(self) -> None:
        self.meta["updated"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        data = json.dumps(self.meta, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        write_atomically(self.path / RUN_FILE, data)

    @classmethod
    def load(cls, path: Path) -> RunBundle:
        run_file = path / RUN_FILE
        try:
            meta = json.loads(run_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BundleError(f"{run_file}: not found; is {path} a PoX run bundle?") from exc
        except ValueError as exc:
            raise BundleError(f"{run_file}: not valid JSON ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
            raise BundleError(f"{run_file}: field 'format' is not {RUN_FORMAT!r}")
        if not isinstance(meta.get("run_id"), str):
            raise BundleError(f"{run_file}: field 'run_id' is missing")
        return cls(path=path, meta=meta)

    @classmethod
    def create(cls, workdir: Path, meta: dict[str, Any]) -> RunBundle:
        run_id = new_run_id()
        path = runs_root(workdir) / run_id
        path.mkdir(parents=True)
        (path / "logs").mkdir()
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        full = {
            "format": RUN_FORMAT,
            "run_id": run_id,
            "origin": origin_for(run_id),
            "status": STATUS_RUNNING,
            "created": now,
            "sessions": [],
            "dag_edges": [],
            **meta,
        }
        bundle = cls(path=path, meta=full)
        bundle.save()
        return bundle


class WriterLock:
    """An exclusive flock on the bundle held by the process writing it."""

    def __init__(self, bundle_path: Path) -> None:
        self._fd = os.open(bundle_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)


def list_runs(workdir: Path) -> list[RunBundle]:
    """Every readable run under workdir/.pox/runs, oldest first (run ids sort by time)."""
    root = runs_root(workdir)
    if not root.is_dir():
        return []
    out = []
    for child in sorted(root.iterdir()):
        if (child / RUN_FILE).is_file():
            try:
                out.append(RunBundle.load(child))
            except BundleError:
                continue
    return out


def resolve_run(run: str | None, workdir: Path | None = None) -> RunBundle:
    """RUN may be a run id, a prefix of one, or a bundle directory; default: the latest run."""
    workdir = workdir or Path.cwd()
    if run is not None and (Path(run) / RUN_FILE).is_file():
        return RunBundle.load(Path(run))
    runs = list_runs(workdir)
    if not runs:
        raise UsageError(
            f"no PoX runs under {runs_root(workdir)}",
            hint="run the workflow with `snakemake --executor pox`, or pass a bundle directory",
        )
    if run is None:
        return runs[-1]
    matches = [r for r in runs if r.run_id.startswith(run)]
    if not matches:
        raise UsageError(f"no run {run!r} under {runs_root(workdir)}", hint="see `pox runs`")
    if len(matches) > 1:
        raise UsageError(f"run {run!r} is ambiguous: {', '.join(m.run_id for m in matches)}")
    return matches[0]


def find_resumable(workdir: Path, snakefile: str) -> Iterator[tuple[RunBundle, WriterLock]]:
    """Interrupted runs of the same Snakefile whose writer is gone, newest first, locked."""
    for bundle in reversed(list_runs(workdir)):
        if bundle.meta.get("status") != STATUS_RUNNING or bundle.meta.get("snakefile") != snakefile:
            continue
        lock = WriterLock(bundle.path)
        if lock.try_acquire():
            yield bundle, lock
        else:
            lock.release()
