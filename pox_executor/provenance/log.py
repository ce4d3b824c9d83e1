"""The run log: DSSE envelopes appended to a JSON-lines file, covered by an RFC 9162 tree.

Crash safety is by ordering: an envelope line is appended and fsynced before the checkpoint that
covers it is written (to a temporary file, fsynced, renamed over `checkpoint`). So after `kill -9`
at any moment the file holds the checkpointed prefix, perhaps followed by complete lines not yet
checkpointed and at most one torn line. `RunLog.open` truncates a torn tail and re-checkpoints,
so a resumed run neither loses nor duplicates a record.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from pox_executor.errors import BundleError
from pox_executor.primitives import write_atomically
from pox_executor.provenance import merkle
from pox_executor.provenance.checkpoint import Checkpoint, sign_checkpoint
from pox_executor.provenance.dsse import envelope_digest
from pox_executor.provenance.keys import SigningKey

ATTESTATIONS_FILE = "attestations.intoto.jsonl"
CHECKPOINT_FILE = "checkpoint"


@dataclass(frozen=True)
class LogLines:
    """The complete lines of a log file, and how many torn bytes follow them."""

    lines: list[bytes]
    torn_bytes: int


def read_log_lines(path: Path) -> LogLines:
    """Split the attestations file into complete lines; a last line without newline is torn."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LogLines([], 0)
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1] if end else []
    return LogLines(lines, len(data) - end)


class RunLog:
    """Append-only, checkpointed log of one run. Thread-safe."""

    def __init__(self, directory: Path, origin: str, key_name: str, key: SigningKey) -> None:
        self.directory = directory
        self.origin = origin
        self._key_name = key_name
        self._key = key
        self._lock = threading.Lock()
        self._path = directory / ATTESTATIONS_FILE
        recovered = read_log_lines(self._path)
        if recovered.torn_bytes:
            # A crash tore the last append: drop the partial line, it was never checkpointed.
            with open(self._path, "r+b") as handle:
                handle.truncate(self._path.stat().st_size - recovered.torn_bytes)
                os.fsync(handle.fileno())
        self._tree = merkle.CompactTree(merkle.leaf_hash(line) for line in recovered.lines)
        self._digests = [envelope_digest(line) for line in recovered.lines]
        self.recovered_torn_bytes = recovered.torn_bytes
        self.write_checkpoint()

    @property
    def size(self) -> int:
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    def envelope_digests(self) -> list[str]:
        with self._lock:
            return list(self._digests)

    def append(self, line: bytes) -> tuple[int, str]:
        """Append one serialized envelope; return its index and envelope digest."""
        if b"\n" in line:
            raise BundleError("an envelope line must not contain a newline")
        with self._lock:
            with open(self._path, "ab") as handle:
                handle.write(line + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._tree.append(merkle.leaf_hash(line))
            digest = envelope_digest(line)
            self._digests.append(digest)
            index = self._tree.size - 1
            self._write_checkpoint_locked()
        return index, digest

    def write_checkpoint(self) -> str:
        with self._lock:
            return self._write_checkpoint_locked()

    def _write_checkpoint_locked(self) -> str:
        cp = Checkpoint(origin=self.origin, size=self._tree.size, root=self._tree.root())
        note = sign_checkpoint(cp, self._key_name, self._key)
        write_atomically(self.directory / CHECKPOINT_FILE, note.encode("utf-8"))
        return note
