"""`enclave_images/<name>/packages.lock`: the exact inputs an image is built from.

One Debian package per line, `name=version architecture sha256:<hex> size`, then one line per
Python distribution the image holds, `pypi:name==version` (their wheels and hashes are pinned by
`snakemake-requirements.txt`). A build installs exactly these packages, each checked against its
SHA-256, or fails; `pox images lock` rewrites the file (see `relock`). Lines starting with `#`
are comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pox_executor.errors import UsageError

_DEB_LINE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]*)=(?P<version>\S+) (?P<arch>[a-z0-9-]+) "
    r"sha256:(?P<sha256>[0-9a-f]{64}) (?P<size>[0-9]+)$"
)
_PYPI_LINE = re.compile(r"^pypi:(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+)$")


@dataclass(frozen=True, order=True)
class LockedDeb:
    """One Debian binary package pinned by name, version, architecture and content digest."""

    name: str
    version: str
    arch: str
    sha256: str
    size_bytes: int

    @property
    def pin(self) -> str:
        return f"{self.name}={self.version}"

    @property
    def filename(self) -> str:
        """The pool file name Debian gives it (the epoch's `:` written as `%3a`)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"

    def line(self) -> str:
        return f"{self.pin} {self.arch} sha256:{self.sha256} {self.size_bytes}"


@dataclass(frozen=True)
class ImageLock:
    """The parsed `packages.lock` of one image."""

    debs: tuple[LockedDeb, ...]
    pypi: tuple[str, ...]  # "name==version", sorted

    def text(self, image: str) -> str:
        header = (
            f"# pox/{image}: the Debian packages (name=version architecture sha256 size) and\n"
            f"# Python distributions a build installs, exactly. Written by `pox images lock "
            f"{image}`.\n"
        )
        lines = [d.line() for d in sorted(self.debs)] + [f"pypi:{p}" for p in self.pypi]
        return header + "\n".join(lines) + "\n"

    def pins(self) -> list[str]:
        """`name=version` of every Debian package, then `pypi:name==version` (manifest form)."""
        return [d.pin for d in sorted(self.debs)] + [f"pypi:{p}" for p in self.pypi]


def parse_lock(text: str, where: str) -> ImageLock:
    """Parse a `packages.lock`; a malformed line is a UsageError naming the file and line."""
    debs: list[LockedDeb] = []
    pypi: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        deb = _DEB_LINE.match(line)
        if deb:
            debs.append(
                LockedDeb(deb["name"], deb["version"], deb["arch"], deb["sha256"], int(deb["size"]))
            )
            continue
        wheel = _PYPI_LINE.match(line)
        if wheel:
            pypi.append(f"{wheel['name']}=={wheel['version']}")
            continue
        raise UsageError(
            f"{where}:{number}: not a lock line: {line[:120]!r}",
            hint="expected `name=version arch sha256:<64 hex> size` or `pypi:name==version`; "
            "regenerate the file with `pox images lock`",
        )
    names = [d.name for d in debs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"{where}: packages locked twice: {', '.join(duplicates)}")
    return ImageLock(tuple(sorted(debs)), tuple(sorted(pypi)))


def read_lock(path: Path, image: str) -> ImageLock:
    """The lock beside a recipe; missing or empty is an error that says how to make one."""
    if not path.is_file():
        raise UsageError(
            f"pox/{image} has no {path.name} (looked for {path})",
            hint=f"resolve one against the Debian archive: pox images lock {image}",
        )
    lock = parse_lock(path.read_text(), str(path))
    if not lock.debs:
        raise UsageError(
            f"{path} locks no Debian package",
            hint=f"resolve one against the Debian archive: pox images lock {image}",
        )
    return lock
