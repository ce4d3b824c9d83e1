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
from pox_executor.enclave.images.recipes import (
    DPKG_FILTERS,
    SOURCE_DATE_EPOCH,
    Recipe,
    mirrors,
)
from pox_executor.enclave.images.steps import Log, run_step
from pox_executor.enclave.images.tarball import write_deterministic_tar
from pox_executor.enclave.images.wheels import SITE_DIR, ensure_wheels, install_wheels
from pox_executor.errors import EnclaveError

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


def _dpkg_manifest(rootfs: Path) -> list[str]:
    out = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f", "${Package}=${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line for line in out.splitlines() if line)


def build_rootfs(recipe: Recipe, entry: Path, log: Log) -> tuple[str, list[str], Path]:
    """mmdebstrap + wheels + scrub + deterministic tar; returns (measurement, manifest, tar)."""
    if os.geteuid() != 0:
        raise EnclaveError(
            "building an enclave image needs root (mmdebstrap --mode=root, docker import)",
            hint="run `pox images build` as root",
        )
    if shutil.which("mmdebstrap") is None:
        raise EnclaveError("mmdebstrap is not installed", hint="apt-get install mmdebstrap")
    wheels = ensure_wheels(log) / "wheels"
    entry.mkdir(parents=True, exist_ok=True)
    rootfs = entry / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "LC_ALL": "C.UTF-8"}
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        '--aptopt=Apt::Install-Recommends "false"',
        *(f"--dpkgopt={f}" for f in DPKG_FILTERS),
        f"--include={','.join(recipe.packages)}",
        "--skip=essential/unlink",
        f'--setup-hook=mkdir -p "$1"/var/cache/apt/archives/ && '
        f"find {debs} -maxdepth 1 -name '*.deb' -exec cp -t \"$1\"/var/cache/apt/archives/ {{}} +",
        f"--customize-hook=find \"$1\"/var/cache/apt/archives -maxdepth 1 -name '*.deb' "
        f"-exec cp -n -t {debs} {{}} +",
        "bookworm",
        str(rootfs),
        *mirrors(),
    ]
    run_step(argv, log, env=env)
    packages = _dpkg_manifest(rootfs)
    packages += [f"pypi:{w}" for w in install_wheels(wheels, rootfs)]
    _add_job_user(rootfs)
    _scrub(rootfs)
    _compile_site(rootfs, log)
    tar_path = entry / "rootfs.tar"
    measurement = write_deterministic_tar(rootfs, tar_path)
    shutil.rmtree(rootfs, ignore_errors=True)
    return measurement, packages, tar_path
