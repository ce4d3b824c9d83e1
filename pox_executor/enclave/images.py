"""Enclave images: offline, reproducible builds of the `pox/<name>` Docker images and their listing.

This module owns the image recipes in `enclave_images/<name>/recipe.json`, the build (Debian
bookworm minbase by `mmdebstrap` with `SOURCE_DATE_EPOCH`, plus snakemake and its dependencies
unpacked from hash-pinned wheels and byte-compiled into hash-based pycs, so that a job's own
`python -m snakemake ...` runs inside the image), the deterministic root filesystem tar, its
`docker import`, and the measurement.

The measurement of an image is the SHA-256 of that tar, which is also the digest Docker records
for the image's only layer (`RootFS.Layers[0]`, the diff id): it depends on the content only, so
building the same recipe twice from the same package versions gives the same measurement, and an
auditor can rebuild and compare. Builds are cached by recipe digest under `POX_IMAGE_CACHE`
(default `/var/cache/pox-images`), outside the repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from pox_executor.errors import EnclaveError, UsageError

BUILDER_VERSION = 2
SOURCE_DATE_EPOCH = 1700000000  # 2023-11-14T22:13:20Z; every file in an image has this mtime
JOB_UID = 65532
JOB_USER = "pox"
IMAGE_REPOSITORY = "pox"
LABEL_NAME = "org.pox.image"
LABEL_MEASUREMENT = "org.pox.measurement"
LABEL_RECIPE = "org.pox.recipe-digest"
DEFAULT_CACHE = Path("/var/cache/pox-images")
DEFAULT_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
SITE_DIR = "opt/pox/site-packages"
EXPECTED_FILE = "expected-measurement"
PACKAGES_FILE = "packages.lock"
# Files whose content depends on when or where the build ran, not on what was installed.
_VOLATILE = (
    "var/cache/ldconfig/aux-cache",
    "var/lib/dpkg/available-old",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/apt/extended_states",
)
_EMPTIED_DIRS = (
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
_DPKG_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# -- recipes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """One `enclave_images/<name>/recipe.json`: what goes into the image."""

    name: str
    description: str
    packages: tuple[str, ...]
    check: tuple[str, ...]
    env: dict[str, str]
    directory: Path

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}/{self.name}:latest"


def images_dir() -> Path:
    """The `enclave_images/` folder: `POX_ENCLAVE_IMAGES`, else the one beside the package."""
    override = os.environ.get("POX_ENCLAVE_IMAGES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "enclave_images"


def cache_dir() -> Path:
    return Path(os.environ.get("POX_IMAGE_CACHE") or DEFAULT_CACHE)


def mirrors() -> tuple[str, ...]:
    """apt source lines; `POX_DEBIAN_MIRRORS` (separated by `|`) overrides, e.g. a snapshot."""
    override = os.environ.get("POX_DEBIAN_MIRRORS")
    if override:
        return tuple(line.strip() for line in override.split("|") if line.strip())
    return DEFAULT_MIRRORS


def recipe_names() -> list[str]:
    root = images_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/recipe.json"))


def load_recipe(name: str) -> Recipe:
    path = images_dir() / name / "recipe.json"
    if not path.is_file():
        raise UsageError(
            f"no enclave image recipe named {name!r} (looked for {path})",
            hint=f"available: {', '.join(recipe_names()) or 'none'}",
        )
    try:
        data = json.loads(path.read_text())
        packages = tuple(str(p) for p in data["packages"])
        check = tuple(str(c) for c in data["check"])
        env = {str(k): str(v) for k, v in dict(data.get("env", {})).items()}
        description = str(data.get("description", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: malformed recipe ({exc})") from exc
    if "python3" not in packages:
        raise UsageError(f"{path}: every image needs python3 (jobs run `python3 -m snakemake`)")
    return Recipe(name, description, packages, check, env, path.parent)


def requirements_file() -> Path:
    return images_dir() / "snakemake-requirements.txt"


def constraints_file() -> Path:
    return images_dir() / "build-constraints.txt"


def recipe_digest(recipe: Recipe, mirror_lines: Sequence[str] | None = None) -> str:
    """SHA-256 over everything that decides the image's content, except the archive's state."""
    document: dict[str, Any] = {
        "builder": BUILDER_VERSION,
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "recipe": (recipe.directory / "recipe.json").read_text(),
        "requirements": requirements_file().read_text(),
        "constraints": constraints_file().read_text(),
        "mirrors": list(mirror_lines if mirror_lines is not None else mirrors()),
        "dpkg_filters": list(_DPKG_FILTERS),
    }
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def archive_state(mirror_lines: Sequence[str], timeout: float = 10.0) -> str | None:
    """Digest of the archive's amd64 package indexes (from each suite's Release file).

    It changes exactly when the Debian archive may resolve to other package versions. None when
    the mirror cannot be reached (an offline machine then reuses its cached build).
    """
    parts: list[str] = []
    for line in mirror_lines:
        fields = line.split()
        if len(fields) < 4 or fields[0] != "deb":
            return None
        uri, suite, components = fields[1].rstrip("/"), fields[2], fields[3:]
        try:
            with urllib.request.urlopen(f"{uri}/dists/{suite}/Release", timeout=timeout) as r:
                release = r.read().decode("utf-8", "replace")
        except OSError:
            return None
        wanted = {f"{c}/binary-amd64/Packages.xz" for c in components}
        in_sha256 = False
        for row in release.splitlines():
            if not row.startswith(" "):
                in_sha256 = row.startswith("SHA256:")
                continue
            cols = row.split()
            if in_sha256 and len(cols) == 3 and cols[2] in wanted:
                parts.append(f"{suite} {cols[2]} {cols[0]}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """A built image: what `pox images list` prints and what the docker backend measures."""

    name: str
    tag: str
    measurement: str
    size_bytes: int
    recipe_digest: str
    packages: tuple[str, ...] = ()
    build_seconds: float | None = None
    cached: bool = False
    expected: str | None = None
    image_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def matches_expected(self) -> bool | None:
        return None if self.expected is None else self.expected == self.measurement

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "measurement": self.measurement,
            "image_digest": f"sha256:{self.measurement}",
            "size_bytes": self.size_bytes,
            "recipe_digest": self.recipe_digest,
            "packages": list(self.packages),
            "build_seconds": self.build_seconds,
            "cached": self.cached,
            "expected_measurement": self.expected,
            "image_id": self.image_id,
        }


# -- docker --------------------------------------------------------------------------------------


def docker(*args: str, input_path: Path | None = None, timeout: float = 600) -> str:
    """Run the docker CLI; raise EnclaveError with its stderr when it fails."""
    exe = shutil.which("docker")
    if exe is None:
        raise EnclaveError(
            "the docker CLI is not installed", hint="install Debian's docker.io (make setup)"
        )
    stdin = open(input_path, "rb") if input_path is not None else subprocess.DEVNULL
    try:
        result = subprocess.run(
            [exe, *args], stdin=stdin, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise EnclaveError(f"docker {args[0]} timed out after {timeout:.0f} s") from exc
    finally:
        if input_path is not None and not isinstance(stdin, int):
            stdin.close()
    if result.returncode != 0:
        raise EnclaveError(
            f"docker {' '.join(args[:2])} failed: {result.stderr.strip()[:500]}",
            hint="is the engine running? bash scripts/start-dockerd.sh",
        )
    return result.stdout


def inspect_image(ref: str) -> dict[str, Any] | None:
    """`docker image inspect` of one image, or None when the engine does not have it."""
    exe = shutil.which("docker")
    if exe is None:
        return None
    result = subprocess.run(
        [exe, "image", "inspect", ref], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        return None
    data = json.loads(result.stdout)
    return dict(data[0]) if data else None


def measurement_of(inspected: dict[str, Any]) -> str:
    """The measurement of an image from its inspect data.

    Single-layer images (every `pox images build` image, any `docker import`) are measured by the
    layer digest, i.e. the SHA-256 of the root filesystem tar. A multi-layer image is measured by
    its image id, the digest of its config, which lists every layer's digest in order.
    """
    layers = list(inspected.get("RootFS", {}).get("Layers") or [])
    if len(layers) == 1:
        return str(layers[0]).removeprefix("sha256:")
    return str(inspected.get("Id", "")).removeprefix("sha256:")


def list_images() -> list[ImageInfo]:
    """Every `pox/<name>` image the engine holds, with its measurement and size."""
    out = docker(
        "image",
        "ls",
        "--filter",
        f"label={LABEL_NAME}",
        "--filter",
        "dangling=false",
        "--format",
        "{{.ID}}",
    )
    infos: list[ImageInfo] = []
    for image_id in sorted(set(out.split())):
        inspected = inspect_image(image_id)
        if inspected is None:
            continue
        infos.append(_info_from_inspect(inspected))
    return sorted(infos, key=lambda i: i.name)


def _info_from_inspect(inspected: dict[str, Any], **extra: Any) -> ImageInfo:
    labels = dict(inspected.get("Config", {}).get("Labels") or {})
    name = str(labels.get(LABEL_NAME, ""))
    tags = [str(t) for t in inspected.get("RepoTags") or []]
    expected_path = images_dir() / name / EXPECTED_FILE
    expected = _read_expected(expected_path) if name else None
    manifest = _cached_manifest(name, str(labels.get(LABEL_RECIPE, "")))
    return ImageInfo(
        name=name,
        tag=next((t for t in tags if t.endswith(":latest")), tags[0] if tags else ""),
        measurement=measurement_of(inspected),
        size_bytes=int(inspected.get("Size", 0)),
        recipe_digest=str(labels.get(LABEL_RECIPE, "")),
        packages=tuple(manifest),
        expected=expected,
        image_id=str(inspected.get("Id", "")),
        **extra,
    )


def _read_expected(path: Path) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.split()[0]
    return None


def _cached_manifest(name: str, digest: str) -> list[str]:
    path = cache_dir() / name / digest / "build.json"
    try:
        return [str(p) for p in json.loads(path.read_text())["packages"]]
    except (OSError, ValueError, KeyError):
        return []


# -- building ------------------------------------------------------------------------------------


def build_image(
    name: str,
    *,
    force: bool = False,
    log: Log = _quiet,
    write_expected: bool = False,
) -> ImageInfo:
    """Build (or reuse) `pox/<name>`; return its measurement, size and contents.

    Reuse happens when the engine or the cache holds a build with the same recipe digest made
    from the same archive state; `force` always rebuilds (what an auditor does).
    """
    recipe = load_recipe(name)
    lock_path = cache_dir() / name / ".lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of an image at a time on this machine
        return _build_locked(recipe, force=force, log=log, write_expected=write_expected)


def _build_locked(recipe: Recipe, *, force: bool, log: Log, write_expected: bool) -> ImageInfo:
    name = recipe.name
    lines = mirrors()
    digest = recipe_digest(recipe, lines)
    state = archive_state(lines)
    entry = cache_dir() / name / digest
    record = _load_record(entry)
    reusable = (
        record is not None and not force and (state is None or record.get("archive_state") == state)
    )
    if reusable and record is not None:
        measurement = str(record["measurement"])
        inspected = inspect_image(recipe.tag)
        if inspected is None or measurement_of(inspected) != measurement:
            tar_path = entry / "rootfs.tar"
            if tar_path.is_file() and _sha256_file(tar_path) == measurement:
                log(f"{name}: importing cached root filesystem {measurement[:16]}")
                _import(recipe, tar_path, measurement, digest)
                inspected = inspect_image(recipe.tag)
            else:
                reusable = False
        if reusable and inspected is not None:
            log(f"{name}: up to date ({measurement[:16]}, recipe {digest[:12]})")
            info = _info_from_inspect(inspected, cached=True)
            return _maybe_write_expected(recipe, info, record, write_expected)
    started = time.monotonic()
    measurement, packages, tar_path = _build_rootfs(recipe, entry, log)
    _import(recipe, tar_path, measurement, digest)
    seconds = round(time.monotonic() - started, 1)
    record = {
        "name": name,
        "measurement": measurement,
        "recipe_digest": digest,
        "archive_state": state,
        "packages": packages,
        "build_seconds": seconds,
        "size_bytes": tar_path.stat().st_size,
    }
    (entry / "build.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    _prune_other_builds(entry)
    inspected = inspect_image(recipe.tag)
    if inspected is None:
        raise EnclaveError(f"{recipe.tag} was imported but the engine does not list it")
    log(f"{name}: built {measurement[:16]} in {seconds:.0f} s")
    info = _info_from_inspect(inspected, build_seconds=seconds, cached=False)
    return _maybe_write_expected(recipe, info, record, write_expected)


def _maybe_write_expected(
    recipe: Recipe, info: ImageInfo, record: dict[str, Any], write: bool
) -> ImageInfo:
    if not write:
        return info
    (recipe.directory / EXPECTED_FILE).write_text(
        f"{info.measurement}\n"
        f"# sha256 of the root filesystem tar of pox/{recipe.name} (its only layer digest),\n"
        f"# built by `pox images build {recipe.name}` from recipe digest {info.recipe_digest}\n"
        f"# with the Debian package versions in {PACKAGES_FILE}.\n"
    )
    (recipe.directory / PACKAGES_FILE).write_text(
        "\n".join(str(p) for p in record.get("packages", [])) + "\n"
    )
    return ImageInfo(**{**info.__dict__, "expected": info.measurement})


def _load_record(entry: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((entry / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return dict(data) if isinstance(data, dict) else None


def _prune_other_builds(keep: Path) -> None:
    for sibling in keep.parent.iterdir():
        if sibling.name.startswith("."):
            continue
        if sibling != keep and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)


def _import(recipe: Recipe, tar_path: Path, measurement: str, digest: str) -> None:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        **recipe.env,
    }
    changes: list[str] = []
    for key in sorted(env):
        changes += ["--change", f"ENV {key}={env[key]}"]
    changes += [
        "--change",
        f"USER {JOB_UID}:{JOB_UID}",
        "--change",
        "WORKDIR /tmp",
        "--change",
        f"LABEL {LABEL_NAME}={recipe.name}",
        "--change",
        f"LABEL {LABEL_MEASUREMENT}={measurement}",
        "--change",
        f"LABEL {LABEL_RECIPE}={digest}",
    ]
    previous = inspect_image(recipe.tag)
    docker("import", *changes, "-", recipe.tag, input_path=tar_path, timeout=1800)
    docker("tag", recipe.tag, f"{IMAGE_REPOSITORY}/{recipe.name}:{measurement[:16]}")
    inspected = inspect_image(recipe.tag)
    if inspected is None or measurement_of(inspected) != measurement:
        got = measurement_of(inspected) if inspected else "nothing"
        raise EnclaveError(
            f"docker import of {recipe.name}: layer digest {got} is not the tar's {measurement}"
        )
    if previous is not None and previous.get("Id") != inspected.get("Id"):
        # The superseded import; left in place if a container still uses it or it is tagged.
        subprocess.run(
            ["docker", "image", "rm", str(previous["Id"])], capture_output=True, check=False
        )


def _run(argv: Sequence[str], log: Log, *, env: dict[str, str] | None = None) -> None:
    log("$ " + " ".join(argv)[:300])
    result = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise EnclaveError(f"{argv[0]} failed (exit {result.returncode}):\n" + "\n".join(tail))


def ensure_wheels(log: Log = _quiet) -> Path:
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
    _run(
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
        _run([sys.executable, "-m", "venv", str(venv)], log)
        build_pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        _run(
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
            _run(
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


def _install_wheels(wheel_dir: Path, rootfs: Path) -> list[str]:
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


def _add_job_user(rootfs: Path) -> None:
    with open(rootfs / "etc/passwd", "a") as f:
        f.write(f"{JOB_USER}:x:{JOB_UID}:{JOB_UID}:PoX job:/tmp:/usr/sbin/nologin\n")
    with open(rootfs / "etc/group", "a") as f:
        f.write(f"{JOB_USER}:x:{JOB_UID}:\n")


def _scrub(rootfs: Path) -> None:
    for rel in _VOLATILE:
        (rootfs / rel).unlink(missing_ok=True)
    for rel in _EMPTIED_DIRS:
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
    _run(
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


def _build_rootfs(recipe: Recipe, entry: Path, log: Log) -> tuple[str, list[str], Path]:
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
        *(f"--dpkgopt={f}" for f in _DPKG_FILTERS),
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
    _run(argv, log, env=env)
    packages = _dpkg_manifest(rootfs)
    packages += [f"pypi:{w}" for w in _install_wheels(wheels, rootfs)]
    _add_job_user(rootfs)
    _scrub(rootfs)
    _compile_site(rootfs, log)
    tar_path = entry / "rootfs.tar"
    measurement = write_deterministic_tar(rootfs, tar_path)
    shutil.rmtree(rootfs, ignore_errors=True)
    return measurement, packages, tar_path


# -- the deterministic tar -----------------------------------------------------------------------


def _ordered(root: Path) -> list[Path]:
    # Depth-first with a stable order: a directory, then everything below it, then its siblings.
    result: list[Path] = []

    def visit(directory: Path) -> None:
        for name in sorted(os.listdir(directory), key=os.fsencode):
            path = directory / name
            result.append(path)
            if path.is_dir() and not path.is_symlink():
                visit(path)

    visit(root)
    return result


def write_deterministic_tar(root: Path, tar_path: Path, epoch: int = SOURCE_DATE_EPOCH) -> str:
    """Tar `root` with sorted names, mtimes clamped to `epoch`, numeric owners, no user names.

    Returns the SHA-256 of the tar (the image measurement). Hard links are kept as links to the
    first name in sort order; sockets and other special files are skipped.
    """
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in _ordered(root):
            st = os.lstat(path)
            arcname = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(arcname)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.uname = info.gname = ""
            info.mtime = min(int(st.st_mtime), epoch)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type = tarfile.LNKTYPE
                    info.linkname = seen[key]
                    tar.addfile(info)
                    continue
                seen[key] = arcname
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
    return _sha256_file(tar_path)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_images(names: Iterable[str], **kwargs: Any) -> list[ImageInfo]:
    return [build_image(name, **kwargs) for name in names]
