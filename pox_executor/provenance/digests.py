"""SHA-256 of files and directories, streamed, in parallel, with a persistent cache.

The cache is keyed by (device, inode, size, mtime_ns, ctime_ns): a later run never re-reads an
unchanged file, and a digest computed for a job's output is reused by its consumers. ctime is part
of the key because any write or rename changes it, so a same-size rewrite within one mtime tick
cannot hit a stale entry. A directory's digest is the SHA-256 of its manifest: one line
`<sha256-hex>  <relative path>\n` per regular file, sorted by path (the `sha256sum` format), so
an auditor can recompute it with standard tools. Snakemake's own marker file
`.snakemake_timestamp`, which it writes into directory outputs after a job, is not part of it.

Snakemake touches every output after its job (`utimensat`), which changes mtime and ctime, so
the key alone would make each consumer read a file its producer just hashed. A `Hasher`
therefore watches each file it hashes with inotify (`ContentWatch`), set up before the read: a
digest is carried over to a new key only if the device, inode and size are the same and the
kernel reported no content event for that inode since the watch began (no `write`-family call,
truncate or fallocate: IN_MODIFY; no close of a file opened for writing: IN_CLOSE_WRITE; the
inode was not freed: IN_IGNORED; the queue did not overflow). That sees every change the stat
key sees; the one change neither sees is a store through a shared writable mapping made before
the hash whose process still runs (such a store on an already dirty page updates no timestamp
either). Without inotify, or past `MAX_WATCHED_FILES`, only the key is used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import sqlite3
import struct
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pox_executor.errors import PoxError
from pox_executor.primitives import sha256_file

_DIRECTORY_MARKERS = frozenset({".snakemake_timestamp"})
# Bounds the kernel memory spent on watches (about 1 KiB each) and the per-user watch limit.
MAX_WATCHED_FILES = 4096
_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_Q_OVERFLOW = 0x4000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    device INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (device, inode)
)
"""


@dataclass(frozen=True)
class FileDigest:
    """What PoX records about one path: its SHA-256 and whether it is a directory."""

    path: str
    sha256: str
    size_bytes: int
    is_directory: bool = False


def directory_manifest(file_digests: dict[str, str]) -> bytes:
    """The manifest text whose SHA-256 is the directory digest (see the module docstring)."""
    lines = [f"{file_digests[rel]}  {rel}\n" for rel in sorted(file_digests)]
    return "".join(lines).encode("utf-8")


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class DigestCache:
    """A persistent (device, inode, size, mtime_ns, ctime_ns) -> sha256 map in SQLite."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[tuple[int, int, int, int, int], str] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
                self._db.commit()
            except (OSError, sqlite3.Error) as exc:
                raise PoxError(
                    f"cannot open the digest cache {path}: {exc} (only a cache: remove it)"
                ) from exc

    def get(self, st: os.stat_result) -> str | None:
        key = _stat_key(st)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None or self._db is None:
                return hit
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, sha256 FROM digests WHERE device=? AND inode=?",
                key[:2],
            ).fetchone()
        if row is None or tuple(row[:3]) != key[2:]:
            return None
        value = str(row[3])
        with self._lock:
            self._memory[key] = value
        return value

    def put(self, st: os.stat_result, sha256: str) -> None:
        key = _stat_key(st)
        with self._lock:
            self._memory[key] = sha256
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", (*key, sha256)
                )
                self._db.commit()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


WatchToken = tuple[int, int]  # (generation of the inotify instance, watch descriptor)


class ContentWatch:
    """inotify watches that tell whether a file's content may have changed since a moment.

    `watch(path)` before reading a file; later `unchanged(token)` is True only if no content
    event (see the module docstring) arrived for it since. Unavailable (no inotify, no free
    watch) means `watch` returns None and callers fall back to the stat key.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed: set[int] = set()
        self._count = 0
        self._generation = 0
        self._fd = -1
        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
        self._open_locked()

    def _open_locked(self) -> None:
        if self._libc is not None and hasattr(self._libc, "inotify_init1"):
            self._fd = int(self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        self._changed.clear()
        self._count = 0
        self._generation += 1

    def watch(self, path: Path) -> WatchToken | None:
        """Start (or restart) watching `path`'s inode; None if it cannot be watched."""
        with self._lock:
            if self._fd < 0 or self._libc is None:
                return None
            self._drain_locked()
            if self._count >= MAX_WATCHED_FILES:
                return None
            mask = _IN_MODIFY | _IN_CLOSE_WRITE
            wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask))
            if wd < 0:
                return None
            self._count += 1
            self._changed.discard(wd)  # a restarted watch counts from now
            return (self._generation, wd)

    def unchanged(self, token: WatchToken) -> bool:
        with self._lock:
            if self._fd < 0:
                return False
            self._drain_locked()
            return token[0] == self._generation and token[1] not in self._changed

    def _drain_locked(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return
            offset = 0
            while offset + _EVENT_HEADER.size <= len(data):
                wd, mask, _, name_len = _EVENT_HEADER.unpack_from(data, offset)
                offset += _EVENT_HEADER.size + name_len
                if mask & _IN_Q_OVERFLOW:  # events were lost: start over, nothing known
                    os.close(self._fd)
                    self._open_locked()
                    return
                self._changed.add(wd)  # IN_MODIFY, IN_CLOSE_WRITE or IN_IGNORED

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class Hasher:
    """Hashes files and directories in parallel, consulting and filling a DigestCache."""

    def __init__(
        self,
        cache: DigestCache | None = None,
        *,
        workers: int | None = None,
        content_watch: ContentWatch | None = None,
    ) -> None:
        """`content_watch`: carry digests over Snakemake's touch (module docstring); the
        hasher then owns it, and `close` releases it with the cache."""
        self.cache = cache or DigestCache(None)
        self._workers = workers or min(8, os.cpu_count() or 1)
        self.bytes_read = 0
        self._count_lock = threading.Lock()
        self._watch = content_watch
        self._watched: dict[tuple[int, int, int], tuple[WatchToken, str]] = {}
        self._pool: ThreadPoolExecutor | None = None  # made on the first call with many files

    def close(self) -> None:
        with self._count_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        self.cache.close()
        if self._watch is not None:
            self._watch.close()

    def _file(self, path: Path) -> tuple[str, int]:
        try:
            st = os.stat(path)
        except FileNotFoundError as exc:
            raise PoxError(f"cannot hash {path}: file does not exist") from exc
        cached = self.cache.get(st)
        if cached is not None:
            return cached, st.st_size
        identity = (st.st_dev, st.st_ino, st.st_size)
        with self._count_lock:
            watched = self._watched.get(identity)
        if watched is not None and self._watch is not None and self._watch.unchanged(watched[0]):
            # same inode and size, no content event since the watch began: only metadata
            # changed (Snakemake's touch), so the bytes are those hashed (module docstring)
            self.cache.put(st, watched[1])
            return watched[1], st.st_size
        # watched before the read: a write during it counts as a change
        token = self._watch.watch(path) if self._watch is not None else None
        value = sha256_file(path)
        after = os.stat(path)
        if _stat_key(after) == _stat_key(st):  # unchanged while we read it: safe to remember
            self.cache.put(st, value)
            if token is not None:
                with self._count_lock:
                    self._watched[identity] = (token, value)
        with self._count_lock:
            self.bytes_read += st.st_size
        return value, st.st_size

    def digest_paths(self, paths: Sequence[str], *, base: Path | None = None) -> list[FileDigest]:
        """Digest every path (file or directory), in the given order, all files in parallel."""
        base = base or Path.cwd()
        # Expand directories first so that every file, wherever it lives, is one pool task.
        plan: list[tuple[str, Path, list[Path] | None]] = []
        for name in paths:
            full = base / name
            if full.is_dir():
                listed_files = [
                    p for p in full.rglob("*") if p.is_file() and p.name not in _DIRECTORY_MARKERS
                ]
                plan.append((name, full, sorted(listed_files)))
            else:
                plan.append((name, full, None))
        every_file: list[Path] = []
        for _, full, listed in plan:
            every_file.extend(listed if listed is not None else [full])
        if len(every_file) <= 1 or self._workers == 1:
            # A job's typical record: one output, one input. Starting and joining pool threads
            # for it cost more than the hash, under the interpreter lock Snakemake's scheduler
            # thread waits for.
            results = {f: self._file(f) for f in every_file}
        else:
            results = dict(
                zip(every_file, self._workers_pool().map(self._file, every_file), strict=True)
            )
        out = []
        for name, full, members in plan:
            if members is None:
                sha, size = results[full]
                out.append(FileDigest(path=name, sha256=sha, size_bytes=size))
                continue
            per_file = {f.relative_to(full).as_posix(): results[f][0] for f in members}
            manifest = directory_manifest(per_file)
            out.append(
                FileDigest(
                    path=name,
                    sha256=hashlib.sha256(manifest).hexdigest(),
                    size_bytes=sum(results[f][1] for f in members),
                    is_directory=True,
                )
            )
        return out

    def _workers_pool(self) -> ThreadPoolExecutor:
        """The hasher's pool, kept across calls (jobs' records hash from several threads)."""
        with self._count_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="pox-hash")
            return self._pool

    def digest_one(self, path: str, *, base: Path | None = None) -> FileDigest:
        return self.digest_paths([path], base=base)[0]
