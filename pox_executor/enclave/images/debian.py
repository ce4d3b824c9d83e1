"""The Debian side of a locked build: finding each locked .deb, and the local repository.

`gather_debs` takes every package of a lock from the source store, or else from the apt
sources (each suite's `Release` and `Packages.xz`, checked against each other, give the file
and its SHA-256), checks it against the lock's SHA-256 and adds it to the store. When a locked
version cannot be had, the error names each such package, the versions the archive has instead,
and every place that was searched. `write_local_repo` lays the gathered files out as a small
signed-by-nobody apt repository (`dists/bookworm/main/binary-amd64/Packages` from each file's
own control data), which is all mmdebstrap ever sees: the online and the offline build are the
same build from the same bytes.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pox_executor.enclave.images.lockfile import LockedDeb
from pox_executor.enclave.images.steps import Log, quiet
from pox_executor.enclave.images.store import SourceStore
from pox_executor.errors import EnclaveError, VerificationError

ARCH = "amd64"
SUITE = "bookworm"


class LockUnsatisfiable(EnclaveError):
    """Some locked package versions cannot be had from the store or the archive."""


@dataclass(frozen=True)
class IndexEntry:
    url: str
    sha256: str
    size_bytes: int


@dataclass
class ArchiveIndex:
    """The amd64 package indexes of the apt sources: (name, version, arch) -> file."""

    files: dict[tuple[str, str, str], IndexEntry] = field(default_factory=dict)
    versions: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _fetch(url: str, timeout_s: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return bytes(response.read())


def _release_sha256(release: str) -> dict[str, tuple[str, int]]:
    listed: dict[str, tuple[str, int]] = {}
    in_sha256 = False
    for row in release.splitlines():
        if not row.startswith(" "):
            in_sha256 = row.startswith("SHA256:")
            continue
        cols = row.split()
        if in_sha256 and len(cols) == 3:
            listed[cols[2]] = (cols[0], int(cols[1]))
    return listed


def parse_packages(text: str, base_url: str, index: ArchiveIndex) -> None:
    """Add the stanzas of one `Packages` file to `index`."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for row in stanza.splitlines():
            if row and not row[0].isspace() and ":" in row:
                key, _, value = row.partition(":")
                fields[key] = value.strip()
        try:
            key3 = (fields["Package"], fields["Version"], fields["Architecture"])
            entry = IndexEntry(
                f"{base_url}/{fields['Filename']}", fields["SHA256"], int(fields["Size"])
            )
        except (KeyError, ValueError):
            continue
        index.files[key3] = entry
        index.versions.setdefault(key3[0], set()).add(key3[1])


def load_index(
    mirror_lines: Sequence[str], log: Log = quiet, timeout_s: float = 60.0
) -> ArchiveIndex:
    """Read each source's `Release` and its amd64 `Packages.xz` (checked against the Release)."""
    index = ArchiveIndex()
    for line in mirror_lines:
        fields = line.split()
        if len(fields) < 4 or fields[0] != "deb" or fields[1].startswith("["):
            index.problems.append(f"{line!r}: not a `deb URI SUITE COMPONENT...` line")
            continue
        uri, suite, components = fields[1].rstrip("/"), fields[2], fields[3:]
        try:
            release = _fetch(f"{uri}/dists/{suite}/Release", timeout_s).decode("utf-8", "replace")
        except OSError as exc:
            index.problems.append(f"{uri} {suite}: {exc}")
            continue
        listed = _release_sha256(release)
        for component in components:
            name = f"{component}/binary-{ARCH}/Packages.xz"
            log(f"reading {uri}/dists/{suite}/{name}")
            try:
                data = _fetch(f"{uri}/dists/{suite}/{name}", timeout_s)
            except OSError as exc:
                index.problems.append(f"{uri} {suite}/{component}: {exc}")
                continue
            if name not in listed or hashlib.sha256(data).hexdigest() != listed[name][0]:
                index.problems.append(f"{uri} {suite}/{name}: does not match its Release file")
                continue
            parse_packages(lzma.decompress(data).decode("utf-8", "replace"), uri, index)
    return index


def gather_debs(
    debs: Sequence[LockedDeb],
    store: SourceStore,
    mirror_lines: Sequence[str] | None,
    *,
    image: str,
    lock_path: str,
    log: Log = quiet,
) -> dict[str, Path]:
    """The store path of every locked .deb (sha256 -> path), fetching what the store lacks.

    `mirror_lines=None` means offline: the store alone. Raises LockUnsatisfiable naming each
    package whose locked version cannot be had, and where it looked.
    """
    found: dict[str, Path] = {}
    wanted: list[LockedDeb] = []
    for deb in debs:
        path = store.verified_blob(deb.sha256)
        if path is not None:
            found[deb.sha256] = path
        else:
            wanted.append(deb)
    if not wanted:
        return found
    places = [f"source store {store.root}"]
    failures: list[str] = []
    if mirror_lines is None:
        failures = [
            f"  {d.pin} ({d.arch}, sha256 {d.sha256[:16]}...): not in the store" for d in wanted
        ]
    else:
        places += [f"apt source `{line}`" for line in mirror_lines]
        index = load_index(mirror_lines, log)
        places += [f"(unreachable: {problem})" for problem in index.problems]
        with tempfile.TemporaryDirectory(prefix="pox-debs-") as tmp:
            for deb in wanted:
                entry = index.files.get((deb.name, deb.version, deb.arch))
                if entry is None:
                    have = sorted(index.versions.get(deb.name, set()))
                    failures.append(
                        f"  {deb.pin} ({deb.arch}): the archive has "
                        + (", ".join(have) if have else "no version of it")
                    )
                    continue
                if entry.sha256 != deb.sha256:
                    failures.append(
                        f"  {deb.pin} ({deb.arch}): the archive's file has sha256 "
                        f"{entry.sha256[:16]}..., the lock {deb.sha256[:16]}..."
                    )
                    continue
                target = Path(tmp) / deb.filename
                log(f"downloading {entry.url}")
                try:
                    with urllib.request.urlopen(entry.url, timeout=120) as response:
                        with open(target, "wb") as out:
                            shutil.copyfileobj(response, out)
                    found[deb.sha256] = store.blob_path(store.put_file(target, deb.sha256))
                except (OSError, VerificationError) as exc:
                    failures.append(f"  {deb.pin} ({deb.arch}): download failed: {exc}")
    if failures:
        raise LockUnsatisfiable(
            f"pox/{image}: {len(failures)} locked package version(s) cannot be had:\n"
            + "\n".join(failures)
            + "\nlooked in:\n"
            + "\n".join(f"  {p}" for p in places),
            hint=(
                f"the lock is {lock_path}. Rebuild from a source store that holds these files "
                "(pox images build --offline-from STORE), point POX_DEBIAN_MIRRORS at an archive "
                f"snapshot that has them, or re-lock: pox images lock {image}"
            ),
        )
    return found


def _control(deb: Path) -> str:
    out = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise EnclaveError(f"{deb}: not a Debian package ({out.stderr.strip()[:200]})")
    return out.stdout.rstrip("\n")


def write_local_repo(debs: Sequence[LockedDeb], files: dict[str, Path], repo: Path) -> str:
    """Lay out `debs` as an apt repository at `repo`; return its `deb [trusted=yes]` line.

    The Packages stanzas come from each file's own control data, so the repository depends on
    the files only. Apt is told to trust it: every file was checked against the lock's SHA-256.
    """
    shutil.rmtree(repo, ignore_errors=True)
    pool = repo / "pool"
    pool.mkdir(parents=True)
    stanzas: list[str] = []
    for deb in sorted(debs):
        target = pool / deb.filename
        try:
            target.hardlink_to(files[deb.sha256])
        except OSError:
            shutil.copyfile(files[deb.sha256], target)
        stanzas.append(
            f"{_control(target)}\nFilename: pool/{deb.filename}\nSize: {deb.size_bytes}\n"
            f"SHA256: {deb.sha256}\n"
        )
    packages = "\n".join(stanzas).encode()
    binary = repo / "dists" / SUITE / "main" / f"binary-{ARCH}"
    binary.mkdir(parents=True)
    (binary / "Packages").write_bytes(packages)
    (repo / "dists" / SUITE / "Release").write_text(
        f"Origin: pox-source-store\nLabel: pox\nSuite: {SUITE}\nCodename: {SUITE}\n"
        f"Architectures: {ARCH}\nComponents: main\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-{ARCH}/Packages\n"
    )
    return f"deb [trusted=yes] copy://{repo} {SUITE} main"
