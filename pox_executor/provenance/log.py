"""The run log: DSSE envelopes appended to a JSON-lines file, covered by an RFC 9162 tree.

Crash safety is by ordering: an envelope line is appended and fsynced before the checkpoint that
covers it is written (to a temporary file, fsynced, renamed over `checkpoint`). So after `kill -9`
at any moment the file holds the checkpointed prefix, perhaps followed by complete lines not yet
checkpointed and at most one torn line. `RunLog.open` truncates a torn tail and re-checkpoints,
so a resumed run neither loses nor duplicates a record.
"""

from __future__ import annotations

import os
import stat
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
# The longest log line any reader accepts (an envelope with DCAP collateral is tens of KiB): a
# longer line is an error, so a hostile bundle cannot make a reader hold a 1 GB line in memory.
MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class LogLines:
    """The complete lines of a log file, and how many torn bytes follow them."""

    lines: list[bytes]
    torn_bytes: int


def read_log_lines(path: Path) -> LogLines:
    """Split the attestations file into complete lines; a last line without newline is torn.

    Reads line by line, never more than MAX_LINE_BYTES + 1 bytes at once; a longer line, or a
    path that is not a regular file, raises BundleError naming the file and line.
    """
    lines: list[bytes] = []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return LogLines([], 0)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the log ({exc.strerror})") from exc
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise BundleError(f"{path}: not a regular file")
        while True:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return LogLines(lines, 0)
            if not line.endswith(b"\n"):
                if len(line) > MAX_LINE_BYTES:
                    raise BundleError(
                        f"{path} line {len(lines) + 1}: longer than {MAX_LINE_BYTES} bytes, the "
                        "limit for one log entry"
                    )
                return LogLines(lines, len(line))
            lines.append(line[:-1])


class RunLog:
    """Append-only, checkpointed log of one run. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        origin: str,
        key_name: str,
        key: SigningKey,
        *,
        checkpoint_now: bool = True,
    ) -> None:
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
        # A recorder whose key is not yet introduced by a signed session opening in the log
        # waits for its first append: a checkpoint must be signed by a key the log vouches for.
        if checkpoint_now:
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
