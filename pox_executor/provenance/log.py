"""The run log: DSSE envelopes appended to a JSON-lines file, covered by an RFC 9162 tree.

Crash safety is by ordering: an envelope line is appended and fsynced before any checkpoint that
covers it is written (to a temporary file, fsynced, renamed over `checkpoint`). So after `kill -9`
at any moment the file holds the checkpointed prefix, perhaps followed by complete lines not yet
checkpointed and at most one torn line. Opening a `RunLog` truncates a torn tail and
re-checkpoints, so a resumed run neither loses nor duplicates a record.

Appends are group-committed: `append` writes its line (from then on it survives `kill -9`, which
loses no written data), and the next checkpoint first fsyncs the log, then writes itself; so
every line is durable before a checkpoint covers it, and one fsync and one signature serve every
line appended since the last checkpoint. Checkpoints are written at most every
`checkpoint_interval_s` (0.5 s by default): a line appended within the interval is covered by a
checkpoint written by a timer when the interval ends, by the next append after it, or by
`close`, whichever comes first. So the checkpoint lags the log by at most the interval, and a
crash inside it (or a power loss, which may also drop the lines not yet synced) leaves exactly
the state the ordering above already allows.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pox_executor.errors import BundleError
from pox_executor.primitives import NotARegularFileError, open_regular, write_atomically
from pox_executor.provenance import merkle
from pox_executor.provenance.checkpoint import Checkpoint, sign_checkpoint
from pox_executor.provenance.dsse import envelope_digest
from pox_executor.provenance.keys import SigningKey

ATTESTATIONS_FILE = "attestations.intoto.jsonl"
CHECKPOINT_FILE = "checkpoint"
# The longest log line any reader accepts (an envelope with DCAP collateral is tens of KiB): a
# longer line is an error, so a hostile bundle cannot make a reader hold a 1 GB line in memory.
MAX_LINE_BYTES = 4 * 1024 * 1024
# The longest a checkpoint may lag the log while a run goes on (see the module docstring).
CHECKPOINT_INTERVAL_S = 0.5


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
        handle = os.fdopen(open_regular(path), "rb")
    except FileNotFoundError:
        return LogLines([], 0)
    except NotARegularFileError as exc:
        raise BundleError(str(exc)) from exc
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the log ({exc.strerror})") from exc
    with handle:
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
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.directory = directory
        self.origin = origin
        self._key_name = key_name
        self._key = key
        self._lock = threading.Lock()
        self._interval_s = checkpoint_interval_s
        self._checkpointed_size = -1  # the size the checkpoint file covers (-1: none written)
        self._checkpointed_at = float("-inf")  # time.monotonic() of the last checkpoint
        self._timer: threading.Timer | None = None
        self._synced_size = 0  # lines known to be on disk (fsynced); the rest may not be yet
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
                handle.write(line + b"\n")  # synced by the checkpoint that will cover it
            self._tree.append(merkle.leaf_hash(line))
            digest = envelope_digest(line)
            self._digests.append(digest)
            index = self._tree.size - 1
            wait_s = self._checkpointed_at + self._interval_s - time.monotonic()
            if wait_s <= 0:
                self._write_checkpoint_locked()
            elif self._timer is None:
                self._timer = threading.Timer(wait_s, self._checkpoint_if_behind)
                self._timer.daemon = True  # close() covers the tail; a crash is the case above
                self._timer.start()
        return index, digest

    def write_checkpoint(self) -> str:
        """Sign and write a checkpoint of the whole log now; return its text."""
        with self._lock:
            return self._write_checkpoint_locked()

    def close(self) -> None:
        """Checkpoint every line appended so far (the end of a session), and stop the timer."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._checkpointed_size != self._tree.size:
                self._write_checkpoint_locked()

    def _checkpoint_if_behind(self) -> None:
        with self._lock:
            self._timer = None
            if self._checkpointed_size != self._tree.size:
                self._write_checkpoint_locked()

    def _write_checkpoint_locked(self) -> str:
        if self._tree.size > self._synced_size:  # the lines become durable before their cover
            with open(self._path, "rb") as handle:
                os.fsync(handle.fileno())
            self._synced_size = self._tree.size
        cp = Checkpoint(origin=self.origin, size=self._tree.size, root=self._tree.root())
        note = sign_checkpoint(cp, self._key_name, self._key)
        write_atomically(self.directory / CHECKPOINT_FILE, note.encode("utf-8"))
        self._checkpointed_size = cp.size
        self._checkpointed_at = time.monotonic()
        return note
