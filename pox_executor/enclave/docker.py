"""The `docker` backend: each job runs in its own container, in a measured image.

A rule picks its image with Snakemake's `container:` directive (`pox/python`, or
`docker://pox/python`; any image the local engine holds, never pulled); rules without one use
`--pox-default-image`. The whole job, i.e. its own `python3 -m snakemake --target-jobs ...`
command, runs inside the image: read-only root filesystem, private /tmp, no network unless the rule
asks, all capabilities dropped, no-new-privileges, numeric non-root user, `--cpus` from threads,
`--memory` from `mem_mb`, a pids limit. The container runs the image by id, so what ran is what
was measured.

Working directory semantics are the `sim` backend's: the host mounts a private overlay of the
working directory (lower: the real directory, read-only; upper: a per-job stage) and bind-mounts it
at the same path. Directories in the overlay are handed to the job user (a metadata-only copy-up
in the stage), existing files keep their owners, so the job can create files but cannot modify
inputs or sources. After the job only its declared outputs, logs and benchmarks are moved into the
real directory (`isolation.commit_outputs`); every other write or deletion is discarded and
reported. `.pox/` is hidden from the job.

Identity: the image's measurement (SHA-256 of its root filesystem tar, see `enclave.images`) is
`measurement()`, `image_digest()` and `builder_id()` for the job, and the measurement inside the
evidence. Evidence is an honest `sim-report` (this backend has no TEE); outside a job (the session
record) the identity is the backend's own: engine version plus the default image.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.images import JOB_UID, inspect_image, measurement_of
from pox_executor.enclave.isolation import Sandbox, commit_outputs, create_sandbox
from pox_executor.enclave.producers.sim import SimProducer
from pox_executor.enclave.runtime import JobSpec, RunOutcome, wait_cancellable
from pox_executor.errors import EnclaveError
from pox_executor.primitives import utc_now

log = logging.getLogger(__name__)

_NOISE_PREFIXES = (".snakemake/",)
_NOT_HANDED_OVER = (".pox", ".git")
_SNAKEMAKE_SKIP = ("conda", "singularity", "apptainer", "storage")
_OVERLAY_FORBIDDEN = (",", ":", "\\", "\n")
BUILDER_PREFIX = "https://pox.dev/backends/docker"
CONTAINER_SOURCE_CACHE = "/tmp/pox-source-cache"
_SOURCE_CACHE_ARG = re.compile(r"--runtime-source-cache-path\s+('[^']*'|\S+)")


@dataclass(frozen=True)
class ImageIdentity:
    """An image as the engine holds it: the reference a rule named, its id and measurement."""

    ref: str
    image_id: str
    measurement: str

    @property
    def digest(self) -> str:
        return f"sha256:{self.measurement}"


def image_reference(container: str) -> str:
    """The engine reference for a rule's `container:` value (`docker://` is optional)."""
    ref = container.strip()
    if ref.startswith("docker://"):
        ref = ref[len("docker://") :]
    if not ref or "://" in ref or ref.endswith(".sif"):
        raise EnclaveError(
            f"container {container!r} is not a Docker image reference",
            hint='use `container: "pox/python"` (an image built by `pox images build python`)'
            " or `docker://<image>` for an image the local engine holds",
        )
    return ref


def engine_version() -> str | None:
    """The Docker engine's server version, or None when no engine answers."""
    exe = shutil.which("docker")
    if exe is None:
        return None
    try:
        result = subprocess.run(
            [exe, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def container_command(command: str) -> str:
    """The job's command as it runs in the image.

    The host's interpreter becomes the image's `python3`, and Snakemake's runtime source cache
    (a host directory under the invoking user's home) becomes a container-private one in /tmp.
    """
    for exe in {sys.executable, os.path.realpath(sys.executable)}:
        for form in (shlex.quote(exe), exe):
            command = command.replace(f"{form} -m snakemake", "python3 -m snakemake")
    return _SOURCE_CACHE_ARG.sub(f"--runtime-source-cache-path {CONTAINER_SOURCE_CACHE}", command)


def _option_value(command: str, option: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for i, word in enumerate(words[:-1]):
        if word == option:
            return words[i + 1]
    return None


class DockerRuntime:
    """One container per job through the docker CLI; see the module docstring."""

    name = "docker"

    def __init__(
        self,
        *,
        default_image: str | None = None,
        stage_root: Path | None = None,
        uid: int = JOB_UID,
        pids_limit: int = 4096,
    ) -> None:
        self._default_ref = image_reference(default_image) if default_image else None
        self._stage_root = stage_root
        self._uid = uid
        self._pids_limit = pids_limit
        self._platform_key = Ed25519PrivateKey.generate()
        self._images: dict[str, ImageIdentity] = {}
        self._producers: dict[str, SimProducer] = {}
        self._lock = threading.Lock()
        self._current = threading.local()
        self._containers: dict[str, str] = {}
        self._engine: str | None = None
        self._default: ImageIdentity | None = None

    # -- preparation -------------------------------------------------------------------------

    def prepare(self, workdir: Path) -> None:
        self._workdir = workdir
        if self._stage_root is None:
            self._stage_root = workdir / ".pox" / "stage"
        if any(ch in str(workdir) or ch in str(self._stage_root) for ch in _OVERLAY_FORBIDDEN):
            raise EnclaveError(
                f"path {workdir} contains a character overlayfs options cannot carry"
            )
        self._engine = engine_version()
        if self._engine is None:
            raise EnclaveError(
                "the docker backend needs a running Docker engine and none answers",
                hint="start it with `bash scripts/start-dockerd.sh` (root), or choose "
                "--pox-backend sim",
            )
        if os.geteuid() != 0:
            raise EnclaveError(
                "the docker backend prepares each job's overlay of the working directory on the "
                "host, which needs root",
                hint="run snakemake as root, or choose --pox-backend sim",
            )
        if self._default_ref is not None:
            self._default = self.resolve(self._default_ref)

    def resolve(self, ref: str) -> ImageIdentity:
        """Measure an image the engine holds (once per reference per run)."""
        with self._lock:
            known = self._images.get(ref)
        if known is not None:
            return known
        inspected = inspect_image(ref)
        if inspected is None:
            name = ref.split("/", 1)[-1].split(":", 1)[0]
            raise EnclaveError(
                f"image {ref!r} is not in the local Docker engine (PoX never pulls images)",
                hint=f"build it with `pox images build {name}` or load it with `docker load`",
            )
        identity = ImageIdentity(ref, str(inspected["Id"]), measurement_of(inspected))
        with self._lock:
            self._images[ref] = identity
        return identity

    # -- identity ----------------------------------------------------------------------------

    @property
    def isolated(self) -> bool:
        return True

    def _job_image(self) -> ImageIdentity | None:
        image: ImageIdentity | None = getattr(self._current, "image", None)
        return image

    def describe_isolation(self) -> str:
        image = self._job_image() or self._default
        where = (
            f"image {image.ref} (measurement {image.measurement[:16]}...)"
            if image
            else ("image per rule")
        )
        return (
            f"docker {self._engine or '?'}: one container per job, {where}, read-only root, "
            f"uid {self._uid}, all capabilities dropped, no-new-privileges, no network unless the "
            "rule asks, private overlay of the working directory"
        )

    def _session_measurement(self) -> str:
        document = {
            "backend": self.name,
            "engine": self._engine,
            "default_image": self._default.measurement if self._default else None,
        }
        return hashlib.sha256(rfc8785.dumps(document)).hexdigest()

    def measurement(self) -> str:
        image = self._job_image()
        return image.measurement if image else self._session_measurement()

    def image_digest(self) -> str:
        return f"sha256:{self.measurement()}"

    def builder_id(self) -> str:
        return f"{BUILDER_PREFIX}@sha256:{self.measurement()}"

    def evidence(self, report_data: bytes) -> Evidence:
        measurement = self.measurement()
        with self._lock:
            producer = self._producers.get(measurement)
            if producer is None:
                producer = SimProducer(measurement, platform_key=self._platform_key)
                self._producers[measurement] = producer
        return producer.produce(report_data)

    # -- running -----------------------------------------------------------------------------

    def run(self, spec: JobSpec, cancelled: threading.Event) -> RunOutcome:
        self._current.image = None
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        assert self._stage_root is not None
        sandbox = create_sandbox(self._stage_root / spec.invocation_id)
        merged = sandbox.stage / "merged"
        merged.mkdir()
        started = utc_now()
        code = 125
        mounted = False
        with open(spec.log_path, "ab") as log_file:
            try:
                image = self.resolve(self._image_ref(spec))
                self._current.image = image
                _own_output_parents(spec, sandbox, self._uid)
                _mount_overlay(spec.workdir, sandbox, merged)
                mounted = True
                self._hand_over(merged)
                argv = self._docker_argv(spec, image, merged)
                log_file.write(
                    f"PoX docker backend: image {image.ref} ({image.image_id}, measurement "
                    f"{image.measurement}); container command: {argv[-1]}\n".encode()
                )
                log_file.flush()
                code = self._run_container(argv, spec, log_file, cancelled)
            except EnclaveError as exc:
                log_file.write(f"PoX docker backend: {exc.diagnostics()}\n".encode())
                code = 125
            finally:
                if mounted:
                    _umount(merged)
        finished = utc_now()
        with contextlib.suppress(OSError):
            merged.rmdir()
        discarded = commit_outputs(sandbox, spec.workdir, spec.outputs)
        _restore_owner(spec)
        noise = [d for d in discarded if d.split(" ", 1)[1].startswith(_NOISE_PREFIXES)]
        kept = [d for d in discarded if d not in noise]
        if noise:
            kept.append(f"{len(noise)} writes under .snakemake/ (Snakemake's own scratch)")
        return RunOutcome(
            exit_code=code,
            started_on=started,
            finished_on=finished,
            isolated=True,
            isolation=self.describe_isolation(),
            discarded_writes=tuple(kept),
        )

    def _image_ref(self, spec: JobSpec) -> str:
        ref = image_reference(spec.container) if spec.container else self._default_ref
        if ref is None:
            raise EnclaveError(
                "the rule has no `container:` image and no default image is set",
                hint='add `container: "pox/python"` to the rule (or at the top of the '
                "Snakefile for every rule), or pass --pox-default-image pox/python",
            )
        return ref

    def _hand_over(self, merged: Path) -> None:
        """Give the job user the directories of the overlay (copy-up into the stage only).

        Files keep their owner and mode, so inputs and sources stay unwritable; under
        `.snakemake/` (Snakemake's own scratch) files are handed over too.
        """
        uid = self._uid
        for root, dirs, files in os.walk(merged):
            here = Path(root)
            rel = here.relative_to(merged)
            if rel == Path("."):
                dirs[:] = [d for d in dirs if d not in _NOT_HANDED_OVER]
            if rel == Path(".snakemake"):
                dirs[:] = [d for d in dirs if d not in _SNAKEMAKE_SKIP]
            os.lchown(here, uid, uid)
            if rel.parts[:1] == (".snakemake",):
                for name in files:
                    os.lchown(here / name, uid, uid)

    def _docker_argv(self, spec: JobSpec, image: ImageIdentity, merged: Path) -> list[str]:
        wd = str(spec.workdir)
        cpus = max(1, min(spec.threads, os.cpu_count() or 1))
        argv = [
            "docker",
            "run",
            "--rm",
            "--name",
            _container_name(spec.invocation_id),
            "--label",
            f"org.pox.invocation={spec.invocation_id}",
            "--pull",
            "never",
            "--network",
            "bridge" if spec.network else "none",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            f"{self._uid}:{self._uid}",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,exec,nosuid,nodev,mode=1777",
            "--cpus",
            str(cpus),
            "--pids-limit",
            str(self._pids_limit),
            "--mount",
            f"type=bind,source={merged},target={wd}",
            "--tmpfs",
            f"{wd}/.pox:ro,nosuid,nodev,mode=0555",
            "--workdir",
            wd,
            "--env",
            "HOME=/tmp",
        ]
        if spec.mem_mb:
            argv += ["--memory", f"{max(int(spec.mem_mb), 16)}m"]
        for extra in self._read_only_extras(spec):
            argv += ["--mount", f"type=bind,source={extra},target={extra},readonly"]
        for key, value in sorted(spec.env.items()):
            argv += ["--env", f"{key}={value}"]
        argv += [image.image_id, "sh", "-c", container_command(spec.command)]
        return argv

    def _read_only_extras(self, spec: JobSpec) -> list[str]:
        """Host paths the job's command names outside the working directory (read-only)."""
        extras: list[str] = []
        for option in ("--snakefile",):
            value = _option_value(spec.command, option)
            if not value:
                continue
            path = Path(value)
            path = path if path.is_dir() else path.parent
            if not path.exists() or path.is_relative_to(spec.workdir):
                continue
            if any(ch in str(path) for ch in (",", "\n")):
                continue
            extras.append(str(path))
        return sorted(set(extras))

    def _run_container(
        self, argv: list[str], spec: JobSpec, log_file: BinaryIO, cancelled: threading.Event
    ) -> int:
        name = _container_name(spec.invocation_id)
        try:
            process = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise EnclaveError(f"could not start docker for {spec.invocation_id}: {exc}") from exc
        with self._lock:
            self._containers[spec.invocation_id] = name
        try:
            return wait_cancellable(process, cancelled, lambda: _kill_container(name))
        finally:
            with self._lock:
                self._containers.pop(spec.invocation_id, None)

    def cancel_all(self) -> None:
        with self._lock:
            names = list(self._containers.values())
        for name in names:
            _kill_container(name)


def _container_name(invocation_id: str) -> str:
    return f"pox-job-{invocation_id}"


def _kill_container(name: str) -> None:
    subprocess.run(["docker", "kill", name], capture_output=True, timeout=60, check=False)


def _own_output_parents(spec: JobSpec, sandbox: Sandbox, uid: int) -> None:
    """Give the job user, in the stage, every directory on the way to each declared output.

    Created before the overlay is mounted, these upper-layer directories take precedence over
    the real ones: the job can write its outputs even where the directory was created by the
    user beforehand or is committed by a concurrent job while this one runs (a lower-layer
    directory appearing after the mount is owned by root and escapes the hand-over).
    """
    for out in spec.outputs:
        rel = PurePosixPath(out.path)
        if rel.is_absolute() or ".." in rel.parts:
            continue  # outside the working directory: not this overlay's business
        here = PurePosixPath()
        for part in rel.parent.parts:
            here /= part
            real = spec.workdir / here
            if os.path.lexists(real) and (real.is_symlink() or not real.is_dir()):
                break  # never hide a file or a symlink of the real directory
            staged = sandbox.upper / here
            staged.mkdir(mode=0o755, exist_ok=True)
            os.lchown(staged, uid, uid)


def _mount_overlay(workdir: Path, sandbox: Sandbox, merged: Path) -> None:
    options = f"lowerdir={workdir},upperdir={sandbox.upper},workdir={sandbox.work}"
    result = subprocess.run(
        ["mount", "-t", "overlay", "pox-job", "-o", options, str(merged)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise EnclaveError(f"could not mount the job's overlay: {result.stderr.strip()}")


def _umount(merged: Path) -> None:
    result = subprocess.run(["umount", str(merged)], capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(["umount", "--lazy", str(merged)], capture_output=True, check=False)


def _restore_owner(spec: JobSpec) -> None:
    """Committed outputs belong to the working directory's owner, as if the host wrote them."""
    st = os.stat(spec.workdir)
    for out in spec.outputs:
        path = spec.workdir / out.path
        if not os.path.lexists(path):
            continue
        paths = [path]
        if path.is_dir() and not path.is_symlink():
            paths += [Path(r) / n for r, ds, fs in os.walk(path) for n in (*ds, *fs)]
        for p in paths:
            try:
                if os.lstat(p).st_uid != st.st_uid:
                    os.lchown(p, st.st_uid, st.st_gid)
            except OSError:
                continue
        parent = path.parent
        while parent != spec.workdir and parent.is_relative_to(spec.workdir):
            try:
                if os.lstat(parent).st_uid != st.st_uid:
                    os.lchown(parent, st.st_uid, st.st_gid)
            except OSError:
                pass
            parent = parent.parent
