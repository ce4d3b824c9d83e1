"""Describes the software environment a job runs in: interpreter, installed package set, OS.

The description and its digest go into every job statement (`resolvedDependencies`) so that a
re-run can tell whether it ran on the same software. Computed once per run, and kept between
runs in the user's cache (`$XDG_CACHE_HOME/pox/host-environment.json`, default `~/.cache/pox`)
under a key over everything the description is read from: the interpreter file, the OS
release file, and every distribution `importlib.metadata` finds (its directory and metadata
file, each by device, inode, size, mtime and ctime). Any install, upgrade or removal changes
the key, so a cached description is never stale; reading the metadata of every installed
package takes 0.3-1.3 s, the key about 10 ms. As in git's "racy" check, nothing is cached or
read from the cache while one of those files changed in the last `RECENT_S` seconds: a change
within the file system's timestamp granularity of the previous one could leave its identity
unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import rfc8785

from pox_executor.primitives import sha256_file, sha256_lines

CACHE_FILE = "host-environment.json"
_CACHE_FORMAT = "pox-host-environment-v1"
RECENT_S = 2.0


@dataclass(frozen=True)
class HostEnvironment:
    interpreter: str
    interpreter_version: str
    interpreter_sha256: str
    packages: tuple[str, ...]
    packages_sha256: str
    os_release_sha256: str
    machine: str

    def digest(self) -> str:
        """`sha256:<hex>` over the canonical JSON of this description."""
        document = {
            "interpreter_sha256": self.interpreter_sha256,
            "interpreter_version": self.interpreter_version,
            "packages_sha256": self.packages_sha256,
            "os_release_sha256": self.os_release_sha256,
            "machine": self.machine,
        }
        return "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()


@lru_cache(maxsize=1)
def host_environment() -> HostEnvironment:
    """This process's environment, from the user's cache when nothing it describes changed."""
    return describe_host_environment(default_cache_dir())


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pox"


def describe_host_environment(cache_dir: Path | None) -> HostEnvironment:
    """The description, read from `cache_dir` when its key still matches, else computed (and
    stored there); `cache_dir` None computes it without any cache."""
    key = environment_key() if cache_dir is not None else None
    if cache_dir is not None and key is not None:
        cached = _read_cache(cache_dir / CACHE_FILE, key)
        if cached is not None:
            return cached
    described = _describe()
    if cache_dir is not None and key is not None:
        _write_cache(cache_dir, key, described)
    return described


def environment_key() -> str | None:
    """SHA-256 over the identity of every file the description reads; None (do not cache) when
    some distribution is not a plain directory on disk or one of the files changed recently."""
    parts: list[Any] = [
        _CACHE_FORMAT,
        sys.executable,
        platform.python_version(),
        platform.machine(),
        sys.path,
    ]
    interpreter = Path(sys.executable).resolve()
    parts.append([str(interpreter), _identity(interpreter)])
    os_release = Path("/etc/os-release")
    parts.append([_identity(os_release), _identity(os_release.resolve())])
    for dist in importlib.metadata.distributions():
        location = getattr(dist, "_path", None)
        if not isinstance(location, Path):
            return None
        parts.append(
            [
                str(location),
                _identity(location),
                _identity(location / "METADATA"),
                _identity(location / "PKG-INFO"),
            ]
        )
    recent = time.time_ns() - int(RECENT_S * 1e9)
    if any(isinstance(p, list) and _changed_since(p, recent) for p in parts):
        return None
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()


def _changed_since(part: list[Any], since_ns: int) -> bool:
    return any(
        isinstance(item, list) and max(item[3], item[4]) >= since_ns
        for item in part
        if item is not None
    )


def _identity(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _describe() -> HostEnvironment:
    packages = sorted(
        {
            f"{dist.metadata['Name'].lower()}=={dist.version}"
            for dist in importlib.metadata.distributions()
            if dist.metadata["Name"]
        }
    )
    os_release = Path("/etc/os-release")
    return HostEnvironment(
        interpreter=sys.executable,
        interpreter_version=platform.python_version(),
        interpreter_sha256=sha256_file(Path(sys.executable).resolve()),
        packages=tuple(packages),
        packages_sha256=sha256_lines(packages),
        os_release_sha256=sha256_file(os_release) if os_release.exists() else "",
        machine=platform.machine(),
    )


def _read_cache(path: Path, key: str) -> HostEnvironment | None:
    """The cached description when the file is well formed and made under `key`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != _CACHE_FORMAT:
        return None
    if document.get("key") != key:
        return None
    fields = document.get("description")
    if not isinstance(fields, dict):
        return None
    strings = (
        "interpreter",
        "interpreter_version",
        "interpreter_sha256",
        "packages_sha256",
        "os_release_sha256",
        "machine",
    )
    packages = fields.get("packages")
    if not all(isinstance(fields.get(name), str) for name in strings):
        return None
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        return None
    if sha256_lines(packages) != fields["packages_sha256"]:
        return None
    return HostEnvironment(
        packages=tuple(packages), **{name: str(fields[name]) for name in strings}
    )


def _write_cache(cache_dir: Path, key: str, described: HostEnvironment) -> None:
    """Store the description atomically (a unique temporary file renamed into place, so runs
    writing at once never mix); a cache that cannot be written is skipped."""
    document = {"format": _CACHE_FORMAT, "key": key, "description": asdict(described)}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CACHE_FILE}.", dir=cache_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, sort_keys=True)
            os.replace(tmp, cache_dir / CACHE_FILE)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return
