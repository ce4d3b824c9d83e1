"""SHA-256 of files and directories, streamed, in parallel, with a persistent cache.

The cache is keyed by (device, inode, size, mtime_ns, ctime_ns): a later run never re-reads an
unchanged file, and a digest computed for a job's output is reused by its consumers. ctime is part
of the key because any write or rename changes it, so a same-size rewrite within one mtime tick
cannot hit a stale entry. A directory's digest is the SHA-256 of its manifest: one line
`<sha256-hex>  <relative path>\n` per regular file, sorted by path (the `sha256sum` format), so
an auditor can recompute it with standard tools. Snakemake's own marker file
`.snakemake_timestamp`, which it writes into directory outputs after a job, is not part of it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pox_executor.errors import PoxError
from pox_executor.primitives import sha256_file

_DIRECTORY_MARKERS = frozenset({".snakemake_timestamp"})
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
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

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


class Hasher:
    """Hashes files and directories in parallel, consulting and filling a DigestCache."""

    def __init__(self, cache: DigestCache | None = None, *, workers: int | None = None) -> None:
        self.cache = cache or DigestCache(None)
        self._workers = workers or min(8, os.cpu_count() or 1)
        self.bytes_read = 0
        self._count_lock = threading.Lock()

    def _file(self, path: Path) -> tuple[str, int]:
        try:
            st = os.stat(path)
        except FileNotFoundError as exc:
            raise PoxError(f"cannot hash {path}: file does not exist") from exc
        cached = self.cache.get(st)
        if cached is not None:
            return cached, st.st_size
        value = sha256_file(path)
        after = os.stat(path)
        if _stat_key(after) == _stat_key(st):  # unchanged while we read it: safe to remember
            self.cache.put(st, value)
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
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            results = dict(zip(every_file, pool.map(self._file, every_file), strict=True))
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

    def digest_one(self, path: str, *, base: Path | None = None) -> FileDigest:
        return self.digest_paths([path], base=base)[0]
