"""The Python side of an enclave image: snakemake and its dependencies from hash-pinned wheels.

`ensure_wheels` downloads every line of `enclave_images/snakemake-requirements.txt` once (pip
checks the hashes) into the build cache, under a lock since builds of several images share it,
building the sdist-only ones into wheels in a private venv holding only the hash-pinned tools of
`build-constraints.txt`. `install_wheels` unpacks them
into the image's `SITE_DIR` (no scripts; the image's own python3 byte-compiles them later).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import zipfile
from pathlib import Path

from pox_executor.enclave.images.cache import cache_dir, folder_lock
from pox_executor.enclave.images.recipes import (
    SOURCE_DATE_EPOCH,
    constraints_file,
    requirements_file,
)
from pox_executor.enclave.images.steps import Log, quiet, run_step

SITE_DIR = "opt/pox/site-packages"


def wheels_target() -> Path:
    """The cache folder of the wheels of the current requirement and constraint files."""
    lock = requirements_file()
    key = hashlib.sha256(lock.read_bytes() + constraints_file().read_bytes()).hexdigest()[:16]
    return cache_dir() / "wheels-v2" / key  # v2: tools/ kept (older builders share wheels/)


def ensure_wheels(
    log: Log = quiet, *, find_links: Path | None = None, target: Path | None = None
) -> Path:
    """Wheels of every line of snakemake-requirements.txt, fetched once (hashes checked).

    From PyPI, or with `find_links` from that folder alone (`pip --no-index`). `target/downloads`
    and `target/tools` keep what was fetched (the build's Python inputs), `target/wheels` the
    wheels to unpack.
    """
    target = target or wheels_target()
    done = target / ".complete-v2"  # v2: the build tools are kept in tools/
    if done.exists():
        return target
    # Builds of several images share this folder: one fills it, the others wait and reuse it.
    with folder_lock(target.with_name(target.name + ".lock")):
        if done.exists():
            return target
        _fill_wheels(target, log, find_links)
        done.write_text("ok\n")
    return target


def _fill_wheels(target: Path, log: Log, find_links: Path | None) -> None:
    shutil.rmtree(target, ignore_errors=True)
    downloads, tools, wheels = target / "downloads", target / "tools", target / "wheels"
    for folder in (downloads, tools, wheels):
        folder.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    source = ["--no-index", "--find-links", str(find_links)] if find_links else []
    fetch = [*pip, "download", "-q", "--no-deps", "--require-hashes", *source]
    run_step([*fetch, "-r", str(requirements_file()), "-d", str(downloads)], log)
    sdists = [item for item in sorted(downloads.iterdir()) if not item.name.endswith(".whl")]
    for item in sorted(downloads.iterdir()):
        if item.name.endswith(".whl"):
            shutil.copy2(item, wheels / item.name)
    if sdists:  # PyPI has no wheel for these: build them with the pinned build tools
        run_step([*fetch, "-r", str(constraints_file()), "-d", str(tools)], log)
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
                "--no-index",
                "--find-links",
                str(tools),
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
                    "--no-index",
                    "-w",
                    str(wheels),
                    str(item),
                ],
                log,
                env=env,
            )


def python_inputs(target: Path) -> list[tuple[str, Path]]:
    """(kind, file) of every Python file a build fetched: `python` packages, `build-tool`s."""
    found = [("python", p) for p in sorted((target / "downloads").iterdir())]
    tools = target / "tools"
    if tools.is_dir():
        found += [("build-tool", p) for p in sorted(tools.iterdir())]
    return found


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
