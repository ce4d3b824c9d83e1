"""The names files carry in a statement (`subject[].name`, input `resolvedDependencies[].name`).

One rule, enforced when a record is written and again when it is verified:

- a path inside the run's working directory is named by its normalized POSIX path relative to
  that directory (`results/calls.vcf`): never absolute, no `.` or `..` component, no empty
  component, no NUL, newline or backslash;
- a path outside the working directory (a declared output on a scratch disk, a reference genome
  under `/data`) is named `external:` followed by its normalized absolute path
  (`external:/scratch/run1/out.bam`). The auditor can follow the name, and `pox verify` never
  opens such a path unless asked to (`--check-external`), so a hostile bundle cannot make it read
  `/etc/shadow` or block on `/dev/zero`.

Names beginning with `pox:` are not files (the shell command, a parent envelope) and are not
covered here.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from pox_executor.errors import VerificationError

EXTERNAL_PREFIX = "external:"
_FORBIDDEN_CHARACTERS = ("\x00", "\n", "\r", "\\")


def record_name(path: str | os.PathLike[str], workdir: Path) -> str:
    """The statement name of `path` (absolute, or relative to `workdir`), per the module rule."""
    text = os.fspath(path)
    absolute = text if os.path.isabs(text) else os.path.join(str(workdir), text)
    absolute = posixpath.normpath(absolute)
    if absolute.startswith("//"):
        absolute = "/" + absolute.lstrip("/")
    base = posixpath.normpath(str(workdir))
    if absolute == base:
        raise ValueError(f"{text!r} is the working directory itself, not a file in it")
    if absolute.startswith(base.rstrip("/") + "/"):
        name = absolute[len(base.rstrip("/")) + 1 :]
    else:
        name = EXTERNAL_PREFIX + absolute
    check_record_name(name)
    return name


def is_external(name: str) -> bool:
    return name.startswith(EXTERNAL_PREFIX)


def check_record_name(name: str, *, where: str = "name") -> None:
    """Raise VerificationError unless `name` follows the module rule."""
    if not isinstance(name, str) or not name:
        raise VerificationError(f"{where}: a file name must be a non-empty string")
    if any(ch in name for ch in _FORBIDDEN_CHARACTERS):
        raise VerificationError(f"{where}: {name!r} contains a NUL, newline or backslash")
    path = name[len(EXTERNAL_PREFIX) :] if is_external(name) else name
    if is_external(name):
        if not path.startswith("/") or path.startswith("//"):
            raise VerificationError(f"{where}: {name!r}: an external name must be absolute")
        parts = path[1:].split("/")
    else:
        if path.startswith("/"):
            raise VerificationError(
                f"{where}: {name!r} is absolute; files inside the working directory are named "
                "relative to it, files outside it 'external:/...'"
            )
        parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise VerificationError(
                f"{where}: {name!r} has an empty, '.' or '..' component; names are normalized"
            )


def local_path(name: str, workdir: Path) -> Path:
    """Where a checked name lives on disk."""
    check_record_name(name)
    if is_external(name):
        return Path(name[len(EXTERNAL_PREFIX) :])
    return workdir / name
