"""The run bundle on disk: `.pox/runs/<run-id>/` with run.json, the log, its checkpoint, logs/.

This module owns the layout and `run.json` (format `pox-run/v1`, typed as `RunIndex`, written only
by `RunBundle.save`, replaced atomically): run id, status, Snakemake version, workflow sources and
config digests, DAG edges, settings, and where each session's signed opening is in the log.
run.json is an index: `pox verify` trusts nothing in it (the signed log carries the sessions' keys
and evidence). This module finds runs (`list_runs`, `resolve_run`) and decides whether an
interrupted run can be resumed (its writer's lock is free).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pox_executor.errors import BundleError, PoxError, UsageError
from pox_executor.primitives import (
    FileTooLargeError,
    NotARegularFileError,
    read_regular,
    write_atomically,
)
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
class SessionIndex:
    """Where a session's signed opening is in the log, and its key (a copy; the log is signed)."""

    index: int
    line: int
    key_name: str
    keyid: str
    public_key: str
    started: str
    backend: str
    isolated: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunIndex:
    """The typed content of run.json: an index for finding and listing runs, never trusted.

    Everything `pox verify` relies on is in the signed log; this file only says where things are
    and what the last writer reported (status, size, root), so that `pox runs` needs no parsing.
    """

    run_id: str
    origin: str
    status: str = STATUS_RUNNING
    created: str = ""
    updated: str = ""
    finished: str | None = None
    snakefile: str = ""
    workdir: str = ""
    snakemake_version: str = ""
    pox_version: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    sessions: list[SessionIndex] = field(default_factory=list)
    dag_edges: list[dict[str, Any]] = field(default_factory=list)
    tree_size: int | None = None
    root_sha256: str | None = None
    workflow_sources: list[dict[str, Any]] = field(default_factory=list)
    config_sha256: str | None = None
    chain: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": RUN_FORMAT}
        for name in _INDEX_FIELDS:
            value = getattr(self, name)
            out[name] = [s.to_json() for s in value] if name == "sessions" else value
        return out

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> RunIndex:
        """Strict: a wrong type names the field; unknown fields are ignored (newer writers)."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: expected a JSON object")
        if data.get("format") != RUN_FORMAT:
            raise BundleError(f"{where}: field 'format' is not {RUN_FORMAT!r}")
        values: dict[str, Any] = {}
        for name, (kind, label) in _INDEX_FIELDS.items():
            if name not in data:
                if name in ("run_id", "origin"):
                    raise BundleError(f"{where}: field '{name}' is missing")
                continue
            value = data[name]
            if not _is(value, kind):
                raise BundleError(f"{where}: field '{name}': expected {label}")
            values[name] = value
        sessions = []
        for i, raw in enumerate(values.pop("sessions", [])):
            sessions.append(_session_index(raw, f"{where}: field 'sessions[{i}]'"))
        if any(not isinstance(e, dict) for e in values.get("dag_edges", [])):
            raise BundleError(f"{where}: field 'dag_edges': expected a list of objects")
        if any(not isinstance(e, dict) for e in values.get("workflow_sources", [])):
            raise BundleError(f"{where}: field 'workflow_sources': expected a list of objects")
        return cls(sessions=sessions, **values)


# name -> (accepted JSON type(s), what the error says was expected)
_INDEX_FIELDS: dict[str, tuple[Any, str]] = {
    "run_id": (str, "a string"),
    "origin": (str, "a string"),
    "status": (str, "a string"),
    "created": (str, "a string"),
    "updated": (str, "a string"),
    "finished": ((str, type(None)), "a string or null"),
    "snakefile": (str, "a string"),
    "workdir": (str, "a string"),
    "snakemake_version": (str, "a string"),
    "pox_version": (str, "a string"),
    "settings": (dict, "an object"),
    "sessions": (list, "a list of session objects"),
    "dag_edges": (list, "a list of edges"),
    "tree_size": ((int, type(None)), "an integer or null"),
    "root_sha256": ((str, type(None)), "a hex string or null"),
    "workflow_sources": (list, "a list of {path, sha256}"),
    "config_sha256": ((str, type(None)), "a hex string or null"),
    "chain": (dict, "an object"),
}

_SESSION_FIELDS: dict[str, Any] = {
    "index": int,
    "line": int,
    "key_name": str,
    "keyid": str,
    "public_key": str,
    "started": str,
    "backend": str,
    "isolated": bool,
}


def _is(value: Any, kind: Any) -> bool:
    if isinstance(value, bool) and kind in (int, (int, type(None))):
        return False
    return isinstance(value, kind)


def _session_index(raw: Any, where: str) -> SessionIndex:
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: expected an object")
    for name, kind in _SESSION_FIELDS.items():
        if not _is(raw.get(name), kind):
            raise BundleError(f"{where}.{name}: expected {kind.__name__}")
    return SessionIndex(**{name: raw[name] for name in _SESSION_FIELDS})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RunBundle:
    """One run directory. `index` is the typed run.json; `save` is its one writer."""

    path: Path
    index: RunIndex

    @property
    def run_id(self) -> str:
        return self.index.run_id

    @property
    def meta(self) -> dict[str, Any]:
        """run.json as a plain dict (a read-only snapshot, for display and old callers)."""
        return self.index.to_json()

    @property
    def attestations_path(self) -> Path:
        return self.path / ATTESTATIONS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def read_checkpoint(self) -> str:
        """The checkpoint's text. FileNotFoundError when there is none yet; BundleError when it
        is not a small regular UTF-8 file (a FIFO or a device there must not hang a reader)."""
        path = self.checkpoint_path
        try:
            return read_regular(path, _MAX_CHECKPOINT_BYTES).decode("utf-8")
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise BundleError(f"{path}: cannot read the checkpoint ({exc})") from exc

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def workdir(self) -> Path:
        """The working directory the run's relative paths refer to (the bundle's grandparent)."""
        return self.path.parent.parent.parent

    def save(self) -> None:
        self.index.updated = _now()
        data = json.dumps(self.index.to_json(), indent=2, sort_keys=True).encode("utf-8") + b"\n"
        write_atomically(self.path / RUN_FILE, data)

    @classmethod
    def load(cls, path: Path) -> RunBundle:
        run_file = path / RUN_FILE
        try:
            raw = read_regular(run_file, _MAX_RUN_FILE_BYTES)
        except FileNotFoundError as exc:
            raise BundleError(f"{run_file}: not found; is {path} a PoX run bundle?") from exc
        except NotARegularFileError as exc:
            raise BundleError(str(exc)) from exc
        except OSError as exc:
            raise BundleError(f"{run_file}: cannot read ({exc.strerror})") from exc
        except FileTooLargeError as exc:
            raise BundleError(str(exc)) from exc
        from pox_executor.provenance.records import load_json

        try:
            data = load_json(raw, where=str(run_file))
        except PoxError as exc:
            raise BundleError(str(exc)) from exc
        return cls(path=path, index=RunIndex.from_json(data, where=str(run_file)))

    @classmethod
    def new(cls, workdir: Path, fields: Mapping[str, Any] | None = None) -> RunBundle:
        """A new bundle in memory only (nothing on disk until `write_new`); `fields` sets
        RunIndex fields (checked)."""
        run_id = new_run_id()
        data = {
            **dict(fields or {}),
            "format": RUN_FORMAT,
            "run_id": run_id,
            "origin": origin_for(run_id),
            "status": STATUS_RUNNING,
            "created": _now(),
        }
        index = RunIndex.from_json(data, where="new run.json")
        return cls(path=runs_root(workdir) / run_id, index=index)

    @classmethod
    def create(cls, workdir: Path, fields: Mapping[str, Any] | None = None) -> RunBundle:
        """A new bundle directory with run.json."""
        bundle = cls.new(workdir, fields)
        bundle.write_new()
        return bundle

    def write_new(self) -> None:
        """Create the directory of a bundle made by `new`, with logs/ and run.json."""
        # exist_ok: a job's runtime may already have made logs/ for its captured output
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "logs").mkdir(exist_ok=True)
        self.save()


_MAX_RUN_FILE_BYTES = 64 * 1024 * 1024
_MAX_CHECKPOINT_BYTES = 1024 * 1024  # a signed note: a few lines and signatures
_RUN_SECOND = len("20260101T000000Z")  # a run id's start time, to the second


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
    """Every readable run under workdir/.pox/runs, oldest first.

    Run ids sort by time only to the second (then a random suffix), so two runs started in the
    same second are ordered by their creation time, to the microsecond."""
    return scan_runs(workdir)[0]


@dataclass(frozen=True)
class UnreadableRun:
    """A folder under .pox/runs that is not a readable bundle: its run.json is missing (a run
    that has not written it yet, or a damaged bundle), unreadable or invalid."""

    path: Path
    reason: str


def scan_runs(workdir: Path) -> tuple[list[RunBundle], list[UnreadableRun]]:
    """The readable runs under workdir/.pox/runs, oldest first (`list_runs`), and the folders
    there that are not readable bundles, by name."""
    root = runs_root(workdir)
    if not root.is_dir():
        return [], []
    runs: list[RunBundle] = []
    unreadable: list[UnreadableRun] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.is_symlink():
            continue
        try:
            runs.append(RunBundle.load(child))
        except BundleError as exc:
            reason = str(exc)
            if not os.path.lexists(child / RUN_FILE):
                reason = (
                    f"no {RUN_FILE}: the run was stopped before it recorded anything (a run "
                    "writes it with its first record), or the file was removed"
                )
            unreadable.append(UnreadableRun(child, reason))
    return sorted(runs, key=_creation_order), unreadable


def _creation_order(bundle: RunBundle) -> tuple[str, datetime, str]:
    try:
        created = datetime.fromisoformat(bundle.index.created)
    except ValueError:
        created = datetime.min.replace(tzinfo=UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return bundle.run_id[:16], created, bundle.run_id


RUN_ARGUMENT_HELP = "run id (or prefix), bundle directory or working directory; default latest"


def resolve_run(run: str | None, workdir: Path | None = None) -> RunBundle:
    """RUN may be a run id, a prefix of one, a bundle directory, or a working directory (its
    latest run); default: the latest run under `workdir` (the current directory)."""
    workdir = workdir or Path.cwd()
    if run is not None and os.path.lexists(Path(run) / RUN_FILE):
        return RunBundle.load(Path(run))
    if run is not None and runs_root(Path(run)).is_dir():
        workdir, run = Path(run).resolve(), None  # `pox verify path/to/workflow`
    runs, unreadable = scan_runs(workdir)
    if not runs and not unreadable:
        raise UsageError(
            f"no PoX runs under {runs_root(workdir)}",
            hint="run the workflow with `snakemake --executor pox`; pass its working directory "
            "(or -C DIR), a run id, or a bundle directory",
        )
    # A damaged bundle is never passed over: "the latest run" (or a prefix) must not quietly
    # become an older run because the newer one's run.json was truncated or removed.
    if run is None:
        latest = runs[-1].run_id[:_RUN_SECOND] if runs else ""
        hiding = [u for u in unreadable if u.path.name[:_RUN_SECOND] >= latest]
    else:
        hiding = [u for u in unreadable if u.path.name.startswith(run)]
    if hiding:
        names = "; ".join(f"{u.path.name}: {u.reason}" for u in hiding)
        which = "the latest run" if run is None else f"run {run!r}"
        raise UsageError(
            f"{which} cannot be chosen: {len(hiding)} bundle(s) under {runs_root(workdir)} "
            f"cannot be read ({names})",
            hint="a damaged bundle fails verification; name an intact run by its id or bundle "
            "directory to check that one instead",
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
        if bundle.index.status != STATUS_RUNNING or bundle.index.snakefile != snakefile:
            continue
        lock = WriterLock(bundle.path)
        if lock.try_acquire():
            yield bundle, lock
        else:
            lock.release()
