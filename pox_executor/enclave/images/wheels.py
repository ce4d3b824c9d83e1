"""The Python side of an enclave image: snakemake and its dependencies from hash-pinned wheels.

`ensure_wheels` downloads every line of `enclave_images/snakemake-requirements.txt` once (pip
checks the hashes) into the build cache, building the sdist-only ones into wheels in a private
venv holding only the hash-pinned tools of `build-constraints.txt`. `install_wheels` unpacks them
into the image's `SITE_DIR` (no scripts; the image's own python3 byte-compiles them later).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import zipfile
from pathlib import Path

from pox_executor.enclave.images.cache import cache_dir
from pox_executor.enclave.images.recipes import (
    SOURCE_DATE_EPOCH,
    constraints_file,
    requirements_file,
)
from pox_executor.enclave.images.steps import Log, quiet, run_step

SITE_DIR = "opt/pox/site-packages"


def ensure_wheels(log: Log = quiet) -> Path:
    """Wheels of every line of snakemake-requirements.txt, downloaded once (hashes checked)."""
    lock = requirements_file()
    key = hashlib.sha256(lock.read_bytes() + constraints_file().read_bytes()).hexdigest()[:16]
    target = cache_dir() / "wheels" / key
    done = target / ".complete"
    if done.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    downloads = target / "downloads"
    wheels = target / "wheels"
    downloads.mkdir(parents=True)
    wheels.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run_step(
        [
            *pip,
            "download",
            "-q",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(lock),
            "-d",
            str(downloads),
        ],
        log,
    )
    sdists = [item for item in sorted(downloads.iterdir()) if not item.name.endswith(".whl")]
    for item in sorted(downloads.iterdir()):
        if item.name.endswith(".whl"):
            shutil.copy2(item, wheels / item.name)
    if sdists:  # PyPI has no wheel for these: build them with the pinned build tools
        venv = target / "buildenv"
        run_step([sys.executable, "-m", "venv", str(venv)], log)
        build_pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        run_step(
            [
                *build_pip,
                "install",
                "-q",
                "--no-deps",
                "--require-hashes",
                "-r",
                str(constraints_file()),
            ],
            log,
        )
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)}
        env.pop("PIP_CONSTRAINT", None)
        for item in sdists:
            run_step(
                [
                    *build_pip,
                    "wheel",
                    "-q",
                    "--no-deps",
                    "--no-build-isolation",
                    "-w",
                    str(wheels),
                    str(item),
                ],
                log,
                env=env,
            )
    done.write_text("ok\n")
    return target


def install_wheels(wheel_dir: Path, rootfs: Path) -> list[str]:
    """Unpack each wheel into the image's site directory (no scripts; pycs come later)."""
    site = rootfs / SITE_DIR
    site.mkdir(parents=True, exist_ok=True)
    installed: list[str] = []
    for wheel in sorted(wheel_dir.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for member in sorted(archive.infolist(), key=lambda m: m.filename):
                if member.is_dir():
                    continue
                name = member.filename
                parts = name.split("/")
                if parts[0].endswith(".data"):
                    if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                        name = "/".join(parts[2:])
                    else:
                        continue  # scripts, headers, data: not needed to run snakemake
                dest = site / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(archive.read(member))
                mode = (member.external_attr >> 16) & 0o777
                dest.chmod(0o755 if mode & 0o111 else 0o644)
        dist, version = wheel.name.split("-")[:2]
        installed.append(f"{dist}=={version}")
    pth = rootfs / "usr/lib/python3/dist-packages/pox-snakemake.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    pth.write_text(f"/{SITE_DIR}\n")
    return installed
