"""The `files` check of `pox verify`: the files on disk against the newest successful record.

Owns reading recorded files safely. A hostile bundle chooses the names, so a name must follow
`provenance/names.py`, a relative name must resolve inside the working directory, a file is opened
with O_NOFOLLOW|O_NONBLOCK and read only if `fstat` says it is a regular file (a FIFO or
`/dev/zero` is refused unread), and `external:` names are read only with `check_external`.
Directory outputs are re-digested as `provenance/digests.py` defines them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from pox_executor.audit.findings import Report
from pox_executor.errors import VerificationError
from pox_executor.provenance.digests import directory_manifest
from pox_executor.provenance.names import check_record_name, is_external, local_path
from pox_executor.provenance.records import JobRecord
from pox_executor.provenance.statement import KIND_INPUT

_DIRECTORY_MARKERS = frozenset({".snakemake_timestamp"})


def check_files_on_disk(
    records: list[JobRecord], report: Report, workdir: Path, *, check_external: bool
) -> None:
    """Compare the files on disk with the newest successful record of each path."""
    expected: dict[str, tuple[str, bool, bool, str]] = {}
    for record in records:
        if not record.succeeded:
            continue
        for dep in record.dependencies_of_kind(KIND_INPUT):
            if dep.annotations.get("pox.origin") == "source" and dep.sha256:
                directory = bool(dep.annotations.get("pox.directory"))
                expected.setdefault(dep.name, (dep.sha256, False, directory, record.where))
        for subject in record.subjects:
            if subject.sha256 and not subject.name.startswith("pox:"):
                temp = bool(subject.annotations.get("pox.temp"))
                directory = bool(subject.annotations.get("pox.directory"))
                expected[subject.name] = (subject.sha256, temp, directory, record.where)
    reader = _SafeReader(workdir.resolve())
    checked = skipped = 0
    for name in sorted(expected):
        sha, temp, directory, where = expected[name]
        try:
            check_record_name(name, where=where)
        except VerificationError:
            continue  # reported by the `names` check
        if is_external(name) and not check_external:
            skipped += 1
            continue
        try:
            actual = reader.digest(name, directory=directory, external=is_external(name))
        except FileNotFoundError:
            if temp:
                report.note("files", f"{name} was a temp() output and is gone, as expected", where)
            else:
                report.error("files", f"{name} is missing on disk", where)
            continue
        except VerificationError as exc:
            report.error("files", f"{name}: {exc}", where)
            continue
        checked += 1
        if actual != sha:
            report.error(
                "files",
                f"{name} on disk has sha256 {actual[:16]}... but the record says "
                f"{sha[:16]}...: the file changed after the run",
                where,
            )
    if skipped:
        report.note(
            "files",
            f"{skipped} files outside the working directory were not read "
            "(--check-external reads them)",
        )
    report.facts["files_checked"] = checked
    report.facts["bytes_hashed"] = reader.bytes_read


class _SafeReader:
    """Hashes recorded files without following a hostile bundle anywhere: only regular files
    (fstat after open with O_NOFOLLOW|O_NONBLOCK, so a FIFO or /dev/zero is refused unread) and
    directories of them, resolved inside the working directory unless the name is external."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.bytes_read = 0
        self._buffer = bytearray(1 << 20)
        self._view = memoryview(self._buffer)

    def _inside(self, path: Path, external: bool) -> Path:
        resolved = Path(os.path.realpath(path))
        if not external and not resolved.is_relative_to(self.workdir):
            raise VerificationError(f"resolves to {resolved}, outside the working directory")
        return resolved

    def digest(self, name: str, *, directory: bool, external: bool) -> str:
        path = local_path(name, self.workdir)
        if not os.path.lexists(path):
            raise FileNotFoundError(name)
        resolved = self._inside(path, external)
        if directory and resolved.is_dir() and not resolved.is_symlink():
            return self._directory(resolved, external)
        return self._file(resolved)

    def _file(self, path: Path) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise VerificationError(f"cannot open ({exc.strerror})") from exc
        with os.fdopen(fd, "rb", buffering=0) as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise VerificationError("not a regular file; it was not read")
            digest = hashlib.sha256()
            # One buffer for every file: read(1 MiB) would allocate 1 MiB per small file.
            while count := handle.readinto(self._buffer):
                digest.update(self._view[:count])
                self.bytes_read += count
        return digest.hexdigest()

    def _directory(self, root: Path, external: bool) -> str:
        files: dict[str, str] = {}
        for folder, _dirs, names in os.walk(root, followlinks=False):
            for name in names:
                if name in _DIRECTORY_MARKERS:
                    continue
                path = Path(folder) / name
                if path.is_symlink():
                    target = self._inside(path, external)
                    if not target.is_file():
                        continue  # the recorder hashes regular files only
                    path = target
                elif not path.is_file():
                    continue
                files[(Path(folder) / name).relative_to(root).as_posix()] = self._file(path)
        return hashlib.sha256(directory_manifest(files)).hexdigest()
