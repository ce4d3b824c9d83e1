"""The Debian side of an enclave image: the root filesystem, from mmdebstrap to the measured tar.

`build_rootfs` runs `mmdebstrap --variant=minbase` with the recipe's packages and
`SOURCE_DATE_EPOCH` (downloaded `.deb`s are kept in `<cache>/debs`), unpacks the wheels, adds the
job user, removes what depends on when or where the build ran, byte-compiles the site packages
with the image's own python3 into hash-based pycs, and writes the deterministic tar whose SHA-256
is the image's measurement.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pox_executor.enclave.engine import JOB_UID, JOB_USER
from pox_executor.enclave.images.cache import cache_dir
from pox_executor.enclave.images.lockfile import ImageLock, LockedDeb
from pox_executor.enclave.images.recipes import (
    DEFAULT_MIRRORS,
    DPKG_FILTERS,
    SOURCE_DATE_EPOCH,
    Recipe,
    mirrors,
)
from pox_executor.enclave.images.steps import Log, run_step
from pox_executor.enclave.images.tarball import write_deterministic_tar
from pox_executor.enclave.images.wheels import SITE_DIR, install_wheels
from pox_executor.errors import EnclaveError
from pox_executor.primitives import sha256_file

# Files whose content depends on when or where the build ran, not on what was installed.
VOLATILE = (
    "var/cache/ldconfig/aux-cache",
    "var/lib/dpkg/available-old",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/apt/extended_states",
)
EMPTIED_DIRS = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
    "tmp",
    "var/tmp",
    "run",
    "dev",
    "proc",
    "sys",
)


def _add_job_user(rootfs: Path) -> None:
    with open(rootfs / "etc/passwd", "a") as f:
        f.write(f"{JOB_USER}:x:{JOB_UID}:{JOB_UID}:PoX job:/tmp:/usr/sbin/nologin\n")
    with open(rootfs / "etc/group", "a") as f:
        f.write(f"{JOB_USER}:x:{JOB_UID}:\n")


def _scrub(rootfs: Path) -> None:
    for rel in VOLATILE:
        (rootfs / rel).unlink(missing_ok=True)
    for rel in EMPTIED_DIRS:
        path = rootfs / rel
        if not path.is_dir():
            continue
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    machine_id = rootfs / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("")
    for pyc_dir in rootfs.joinpath(SITE_DIR).rglob("__pycache__"):
        shutil.rmtree(pyc_dir, ignore_errors=True)


def _compile_site(rootfs: Path, log: Log) -> None:
    """Byte-compile the snakemake tree with the image's own python3 (about 3 s saved per job).

    `unchecked-hash` pycs hold a hash of the source instead of its mtime, so they depend on the
    content only (the root filesystem is read-only at run time, so they are never rewritten).
    """
    run_step(
        [
            "chroot",
            str(rootfs),
            "/usr/bin/python3",
            "-m",
            "compileall",
            "-q",
            "-j",
            "1",
            "--invalidation-mode",
            "unchecked-hash",
            f"/{SITE_DIR}",
        ],
        log,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"},
    )


def _dpkg_manifest(rootfs: Path) -> list[tuple[str, str, str]]:
    """(name, version, architecture) of every package dpkg installed in `rootfs`, sorted."""
    out = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={rootfs}/var/lib/dpkg",
            "-W",
            "-f",
            "${Package} ${Version} ${Architecture}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [tuple(line.split(" ")) for line in out.splitlines() if line]
    return sorted((r[0], r[1], r[2]) for r in rows if len(r) == 3)


def _mmdebstrap(
    recipe_packages: list[str], variant: str, rootfs: Path, sources: list[str], hooks: list[str]
) -> list[str]:
    return [
        "mmdebstrap",
        f"--variant={variant}",
        "--mode=root",
        "--format=directory",
        '--aptopt=Apt::Install-Recommends "false"',
        *(f"--dpkgopt={f}" for f in DPKG_FILTERS),
        f"--include={','.join(recipe_packages)}",
        "--skip=essential/unlink",
        *hooks,
        "bookworm",
        str(rootfs),
        *sources,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "LC_ALL": "C.UTF-8"}


def resolve_debian(recipe: Recipe, work: Path, log: Log) -> list[tuple[LockedDeb, Path]]:
    """Resolve the recipe against the apt sources: every package and the .deb apt fetched.

    A throw-away minbase bootstrap from the real archive (apt checks the archive's signatures);
    the .debs apt downloaded are kept, hashed and returned for the new lock.
    """
    require_mmdebstrap()
    rootfs, staged = work / "rootfs", work / "debs"
    shutil.rmtree(work, ignore_errors=True)
    staged.mkdir(parents=True)
    seed = cache_dir() / "debs"  # .debs of earlier resolutions, so apt need not fetch them again
    seed.mkdir(parents=True, exist_ok=True)
    hooks = [
        f'--setup-hook=mkdir -p "$1"/var/cache/apt/archives/ && '
        f"find {seed} -maxdepth 1 -name '*.deb' -exec cp -t \"$1\"/var/cache/apt/archives/ {{}} +",
        f"--customize-hook=find \"$1\"/var/cache/apt/archives -maxdepth 1 -name '*.deb' "
        f"-exec cp -t {staged} {{}} + && cp -n -t {seed} {staged}/*.deb",
    ]
    argv = _mmdebstrap(list(recipe.packages), "minbase", rootfs, list(mirrors()), hooks)
    run_step(argv, log, env=_env())
    resolved: list[tuple[LockedDeb, Path]] = []
    for name, version, arch in _dpkg_manifest(rootfs):
        probe = LockedDeb(name, version, arch, "", 0)
        path = staged / probe.filename
        if not path.is_file():
            raise EnclaveError(
                f"resolving pox/{recipe.name}: apt installed {name}={version} ({arch}) "
                f"but its .deb is not among the downloaded files ({staged})"
            )
        deb = LockedDeb(name, version, arch, sha256_file(path), path.stat().st_size)
        resolved.append((deb, path))
    shutil.rmtree(rootfs, ignore_errors=True)
    return resolved


def require_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise EnclaveError("mmdebstrap is not installed", hint="apt-get install mmdebstrap")


def build_rootfs(
    recipe: Recipe, lock: ImageLock, repo_line: str, wheels: Path, entry: Path, log: Log
) -> tuple[str, list[str], Path]:
    """Build the image's root filesystem from the local repository; (measurement, pins, tar).

    mmdebstrap sees only the locked files (essential set, plus every locked package named),
    so the result is the lock or a failure; what dpkg installed is compared with the lock, and
    the wheels installed with the lock's `pypi:` lines when it has them.
    """
    require_mmdebstrap()
    entry.mkdir(parents=True, exist_ok=True)
    rootfs = entry / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    names = [d.name for d in lock.debs]
    run_step(_mmdebstrap(names, "essential", rootfs, [repo_line], []), log, env=_env())
    installed = _dpkg_manifest(rootfs)
    locked = sorted((d.name, d.version, d.arch) for d in lock.debs)
    if installed != locked:
        extra = sorted(set(installed) - set(locked))
        missing = sorted(set(locked) - set(installed))
        raise EnclaveError(
            f"pox/{recipe.name}: dpkg installed other packages than the lock names "
            f"(not locked: {extra or 'none'}; locked but not installed: {missing or 'none'})",
            hint=f"the recipe changed since the lock was made: pox images lock {recipe.name}",
        )
    (rootfs / "etc/apt/sources.list").write_text("\n".join(DEFAULT_MIRRORS) + "\n")
    python = install_wheels(wheels, rootfs)
    if lock.pypi and sorted(python) != list(lock.pypi):
        raise EnclaveError(
            f"pox/{recipe.name}: the wheels installed ({len(python)}) are not the lock's "
            f"pypi: lines ({len(lock.pypi)}): only installed "
            f"{sorted(set(python) - set(lock.pypi))}, only locked "
            f"{sorted(set(lock.pypi) - set(python))}",
            hint="snakemake-requirements.txt changed since the lock was made: "
            f"pox images lock {recipe.name}",
        )
    packages = [f"{n}={v}" for n, v, _ in installed] + [f"pypi:{w}" for w in sorted(python)]
    _add_job_user(rootfs)
    _scrub(rootfs)
    _compile_site(rootfs, log)
    tar_path = entry / "rootfs.tar"
    measurement = write_deterministic_tar(rootfs, tar_path)
    shutil.rmtree(rootfs, ignore_errors=True)
    return measurement, packages, tar_path
