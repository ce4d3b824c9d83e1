"""Describes the software environment a job runs in: interpreter, installed package set, OS.

The description and its digest go into every job statement (`resolvedDependencies`) so that a
re-run can tell whether it ran on the same software. Computed once per run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import rfc8785

from pox_executor.primitives import sha256_file, sha256_lines


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
