"""The chain journal `.pox/runs/<run-id>/chain.json`: a typed model, its one writer, its loader.

Owns `Journal` (and the entries it holds: apps, records, deals, actions, anchors), `load_journal`
(strict: a malformed journal is a `BundleError` naming the file and the field), `save_journal`
(the only code that writes `chain.json`: temporary file, fsync, rename) and `journal_lock`, the
file lock shared by concurrent settlers of one run (the run's background thread, `pox anchor`).
The journal is an index of what was planned and sent, never evidence: `pox verify` trusts it
only for where to look on chain.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pox_executor.errors import BundleError
from pox_executor.primitives import write_atomically
from pox_executor.provenance.bundle import RunBundle

JOURNAL_FILE = "chain.json"
JOURNAL_FORMAT = "pox-chain/v2"  # v2: runs keyed by (requester, run id); batch tag in orders
DEALS_MODES = ("per-job", "batched", "none")
# Each action kind and the parameters it carries (checked on load; used by `actions`).
ACTION_PARAMS: dict[str, tuple[str, ...]] = {
    "register_app": ("address", "owner", "name", "multiaddr", "checksum", "mrenclave"),
    "create_pool": ("owner", "address"),
    "match": ("deal", "app", "volume", "salt", "params"),
    "initialize": ("deal", "idx", "task"),
    "finalize": ("task", "digest", "enclave"),
    "finalize_batch": ("deal", "first", "count", "digests", "enclave"),
    "anchor": ("size", "root", "task_ids"),
}
ACTION_STATUSES = ("pending", "done", "failed")
ROLES = ("requester", "scheduler", "worker")

_PROCESS_LOCK = threading.Lock()
T = TypeVar("T")


@dataclass
class AppEntry:
    address: str
    rule: str


@dataclass
class RecordEntry:
    """One job of the log and the PoCo task that settles it (task None with deals `none`)."""

    index: int
    digest: str
    task: str | None = None
    deal: str | None = None
    idx: int | None = None
    app: str | None = None
    enclave: str | None = None


@dataclass
class DealEntry:
    deal: str
    app: str
    volume: int
    first_record: int


@dataclass
class Action:
    """One planned transaction; `params` are the kind's arguments (see `actions`)."""

    id: int
    kind: str
    status: str
    params: dict[str, Any]
    tx_hash: str | None = None
    block: int | None = None
    gas_used: int | None = None
    role: str | None = None
    noop: bool = False
    superseded: bool = False
    error: str | None = None


@dataclass
class AnchorEntry:
    size: int
    root: str
    tx_hash: str
    block: int
    timestamp: int


@dataclass
class Journal:
    """What settlement planned for a run and what it sent, in plan order."""

    run_id: str
    registry_run_id: str
    origin: str | None
    profile: str
    chain_id: int
    contracts: dict[str, str]
    deals: str
    accounts: dict[str, str]
    apps: dict[str, AppEntry] = field(default_factory=dict)
    workerpool: str | None = None
    planned_size: int = 0  # log entries [0, planned_size) are planned (jobs and non-jobs)
    records: list[RecordEntry] = field(default_factory=list)
    deals_list: list[DealEntry] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    anchors: list[AnchorEntry] = field(default_factory=list)
    format: str = JOURNAL_FORMAT

    @property
    def requester(self) -> str:
        """The account that matched the run's deals and anchored its checkpoints."""
        return self.accounts["requester"]

    def add_action(self, kind: str, **params: Any) -> Action:
        action = Action(id=len(self.actions), kind=kind, status="pending", params=params)
        self.actions.append(action)
        return action

    def pending(self) -> int:
        return sum(1 for a in self.actions if a.status != "done")

    def to_document(self) -> dict[str, Any]:
        """The JSON document (what `chain.json` holds)."""
        return asdict(self)


def journal_path(bundle: RunBundle) -> Path:
    return bundle.path / JOURNAL_FILE


def save_journal(bundle: RunBundle, journal: Journal) -> None:
    """Write the journal atomically; the only writer of `chain.json`."""
    data = json.dumps(journal.to_document(), indent=1, sort_keys=True).encode("utf-8") + b"\n"
    write_atomically(journal_path(bundle), data)


@contextmanager
def journal_lock(bundle: RunBundle) -> Iterator[None]:
    """Exclusive access to a run's journal across threads and processes."""
    with _PROCESS_LOCK, open(bundle.path / ".chain.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def load_journal(bundle: RunBundle) -> Journal | None:
    """The run's journal, or None when it has none; a malformed one raises `BundleError`."""
    path = journal_path(bundle)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: not a readable JSON journal ({exc})") from exc
    return parse_journal(doc, str(path))


def parse_journal(doc: Any, where: str) -> Journal:
    """Check every field of a journal document and build the model."""
    top = _Fields(doc, where)
    fmt = top.get("format", str)
    if fmt != JOURNAL_FORMAT:
        raise BundleError(
            f"{where}: field 'format' is {fmt!r}, not {JOURNAL_FORMAT!r}",
            hint="journals of older PoX versions name old contracts; settle the run again",
        )
    deals = top.get("deals", str)
    if deals not in DEALS_MODES:
        raise top.fail("deals", f"is {deals!r}, not one of {', '.join(DEALS_MODES)}")
    top.get("accounts", dict)
    accounts = top.child("accounts")
    for role in ROLES:
        accounts.get(role, str)
    top.get("apps", dict)
    apps_fields = top.child("apps")
    apps = {}
    for checksum in apps_fields.doc:
        f = apps_fields.child(str(checksum))
        apps[str(checksum)] = AppEntry(address=f.get("address", str), rule=f.get("rule", str))
    return Journal(
        run_id=top.get("run_id", str),
        registry_run_id=top.get("registry_run_id", str),
        origin=top.get("origin", str, optional=True),
        profile=top.get("profile", str),
        chain_id=top.get("chain_id", int),
        contracts={str(k): str(v) for k, v in top.get("contracts", dict).items()},
        deals=deals,
        accounts={str(k): str(v) for k, v in accounts.doc.items()},
        apps=apps,
        workerpool=top.get("workerpool", str, optional=True),
        planned_size=top.get("planned_size", int),
        records=[_record(f) for f in _items(top, "records")],
        deals_list=[_deal(f) for f in _items(top, "deals_list")],
        actions=[_action(f, i) for i, f in enumerate(_items(top, "actions"))],
        anchors=[_anchor(f) for f in _items(top, "anchors")],
    )


class _Fields:
    """Typed access to one JSON object's fields, with errors naming the file and field path."""

    def __init__(self, doc: Any, where: str, path: str = "") -> None:
        self.where = where
        self.path = path
        if not isinstance(doc, dict):
            raise BundleError(
                f"{where}: {self._name('') or 'the document'} should be an object, "
                f"found {type(doc).__name__}"
            )
        self.doc = doc

    def _name(self, name: str) -> str:
        full = f"{self.path}.{name}" if self.path and name else (self.path or name)
        return f"field '{full}'" if full else ""

    def child(self, name: str) -> _Fields:
        path = f"{self.path}.{name}" if self.path else name
        return _Fields(self.doc.get(name), self.where, path)

    def fail(self, name: str, problem: str) -> BundleError:
        return BundleError(f"{self.where}: {self._name(name)} {problem}")

    def get(self, name: str, kind: type[T], *, optional: bool = False) -> T:
        if name not in self.doc:
            if optional:
                return None  # type: ignore[return-value]
            raise self.fail(name, "is missing")
        value = self.doc[name]
        if value is None and optional:
            return None  # type: ignore[return-value]
        # bool is an int in Python; a JSON true is never a size or an index
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(name, f"should be {kind.__name__}, found {type(value).__name__}")
        return value


def _items(top: _Fields, name: str) -> list[_Fields]:
    return [_Fields(item, top.where, f"{name}[{i}]") for i, item in enumerate(top.get(name, list))]


def _record(f: _Fields) -> RecordEntry:
    return RecordEntry(
        index=f.get("index", int),
        digest=f.get("digest", str),
        task=f.get("task", str, optional=True),
        deal=f.get("deal", str, optional=True),
        idx=f.get("idx", int, optional=True),
        app=f.get("app", str, optional=True),
        enclave=f.get("enclave", str, optional=True),
    )


def _deal(f: _Fields) -> DealEntry:
    return DealEntry(
        deal=f.get("deal", str),
        app=f.get("app", str),
        volume=f.get("volume", int),
        first_record=f.get("first_record", int),
    )


def _action(f: _Fields, position: int) -> Action:
    kind = f.get("kind", str)
    if kind not in ACTION_PARAMS:
        raise f.fail("kind", f"is {kind!r}, not one of {', '.join(ACTION_PARAMS)}")
    status = f.get("status", str)
    if status not in ACTION_STATUSES:
        raise f.fail("status", f"is {status!r}, not one of {', '.join(ACTION_STATUSES)}")
    action_id = f.get("id", int)
    if action_id != position:
        raise f.fail("id", f"is {action_id}, expected {position}")
    params = f.get("params", dict)
    for name in ACTION_PARAMS[kind]:
        if name not in params:
            raise f.fail(f"params.{name}", f"is missing (a {kind} action needs it)")
    return Action(
        id=action_id,
        kind=kind,
        status=status,
        params=params,
        tx_hash=f.get("tx_hash", str, optional=True),
        block=f.get("block", int, optional=True),
        gas_used=f.get("gas_used", int, optional=True),
        role=f.get("role", str, optional=True),
        noop=bool(f.get("noop", bool, optional=True)),
        superseded=bool(f.get("superseded", bool, optional=True)),
        error=f.get("error", str, optional=True),
    )


def _anchor(f: _Fields) -> AnchorEntry:
    return AnchorEntry(
        size=f.get("size", int),
        root=f.get("root", str),
        tx_hash=f.get("tx_hash", str),
        block=f.get("block", int),
        timestamp=f.get("timestamp", int),
    )
