"""Leaf helpers every package shares: SHA-256 of bytes, lines and files, RFC 3339 UTC time,
atomic file replacement, and bounded reads of files a bundle holds.

This module imports nothing from `pox_executor`, so `enclave`, `provenance` and `chain` can all
depend on it without depending on each other.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

_CHUNK_BYTES = 1 << 20


def utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, the format of every PoX time field."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_lines(lines: Iterable[str]) -> str:
    """SHA-256 of newline-terminated lines, e.g. a sorted package list."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Stream one regular file through SHA-256 (hashlib releases the GIL on large updates)."""
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o644 if mode is None else mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or creation inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NotARegularFileError(OSError):
    """`open_regular` found a FIFO, a device, a socket or a directory where a file belongs."""


class FileTooLargeError(ValueError):
    """`read_regular` found more bytes than its limit."""


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file at `path`. Opened without blocking, so a FIFO
    put where a bundle file belongs (no writer ever comes) fails at once instead of hanging the
    reader; a device such as /dev/urandom (endless data) is refused the same way."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise NotARegularFileError(f"{os.fspath(path)}: {kind}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The content of the regular file at `path`, at most `limit` bytes (`open_regular`).
    FileNotFoundError when there is none; FileTooLargeError when it holds more."""
    with os.fdopen(open_regular(path), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"{os.fspath(path)}: larger than {limit} bytes")
    return data
