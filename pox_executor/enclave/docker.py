"""The `docker` backend: each job runs in its own container, in a measured image.

A rule picks its image with Snakemake's `container:` directive (`pox/python`, or
`docker://pox/python`; any image the local engine holds, never pulled); rules without one use
`--pox-default-image`. The whole job, i.e. its own `python3 -m snakemake --target-jobs ...`
command, runs inside the image: read-only root filesystem, private /tmp, no network unless the rule
asks, all capabilities dropped, no-new-privileges, numeric non-root user, CPUs from threads,
memory from `mem_mb`, a pids limit. The container runs the image by id, so what ran is what
was measured. Every engine call goes through `enclave.engine` (the Docker Engine API, honouring
`DOCKER_HOST`); the job's output is copied from the engine into the job log while it runs.

Working directory semantics are the `sim` backend's: the host mounts a private overlay of the
working directory (lower: the real directory, read-only; upper: a per-job stage) and bind-mounts it
at the same path. Directories in the overlay are handed to the job user (a metadata-only copy-up
in the stage), and so are, created in the stage before the mount, the directories on the way to
each declared output (so one committed meanwhile by a concurrent job, owned by root, cannot shut
the job out); existing files keep their owners, so the job can create files but cannot modify
inputs or sources. After the job only its declared outputs, logs and benchmarks are moved into the
real directory (`commit.commit_job_outputs`); every other write or deletion is discarded and
reported. An output that is a symlink leaving the working directory (or into `.pox/`) is refused:
the job fails and its log says why, as with `sim`. `.pox/` is hidden from the job.

Environment: the host's variables filtered by `jobenv.job_environment` (secrets dropped unless the
rule declares them with `envvars:`; the names that passed go into `RunOutcome.environment_names`),
without those naming host places that mean nothing in the image (`PATH`, `PYTHONPATH`, the XDG
directories...), with `HOME`, `TMPDIR`, `TMP` and `TEMP` set to the container's private /tmp.

Confidential datasets (datasets/job.py): every container gets a private tmpfs at `MEMORY_MOUNT`
(0700, the job user's, noexec; memory-backed, gone with the container) named by
`POX_MEMORY_DIR`, where `pox dataset open` decrypts, never the working directory or a host disk;
`POX_ENCLAVE_MEASUREMENT` = the image's measurement, the one its evidence presents to the key
broker; and `pox` on its PATH: the self-contained client of `datasets.guest`, built once per
run from the host's installation and mounted read-only at `/opt/pox-guest`, whose digest the
statement lists among the job's code (`pox:guest-client`).

Identity: each attempt's `RunOutcome` carries the image it ran in (`image_digest`, `measurement`
= SHA-256 of the image's root filesystem tar, see `enclave.engine.measurement_of`, and
`builder_id`); the recorder puts them in the statement and asks `evidence(...,
measurement=...)` for them. Evidence is an honest `sim-report` (this backend has no TEE). The
runtime-wide identity (`measurement()`, `image_digest()`, `builder_id()`, used for the session
record) is the backend's own: engine version plus the default image.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.datasets.guest import (
    GUEST_CODE_NAME,
    GUEST_ROOT,
    GuestClient,
    build_guest_client,
)
from pox_executor.enclave import engine
from pox_executor.enclave.commit import commit_job_outputs
from pox_executor.enclave.engine import JOB_UID, BindMount, ContainerConfig
from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.isolation import (
    HOST_DIRECTORY_VARIABLES,
    OVERLAY_FORBIDDEN,
    PRIVATE_TMP,
    Sandbox,
    create_sandbox,
)
from pox_executor.enclave.jobenv import job_environment
from pox_executor.enclave.jobprocess import (
    RunningJobs,
    measurement_of_document,
    note_in_job_log,
    stage_root_for,
    summarize_discarded,
    wait_cancellable,
)
from pox_executor.enclave.producers.sim import SimProducer
from pox_executor.enclave.runtime import JobSpec, RunOutcome
from pox_executor.errors import EnclaveError
from pox_executor.primitives import utc_now

log = logging.getLogger(__name__)

_NOT_HANDED_OVER = (".pox", ".git")
_SNAKEMAKE_SKIP = ("conda", "singularity", "apptainer", "storage")
# Host variables that name host places or the host's interpreter: the image has its own.
_HOST_ONLY_VARIABLES = (
    *HOST_DIRECTORY_VARIABLES,
    "PATH",
    "PWD",
    "OLDPWD",
    "SHELL",
    "SHLVL",
    "HOSTNAME",
    "_",
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
)
# The container's /tmp is a private tmpfs: the job's scratch and home.
_CONTAINER_PRIVATE = {name: PRIVATE_TMP for name in ("HOME", "TMPDIR", "TMP", "TEMP")}
_WAIT_POLL_S = 1.0  # a wait returns as soon as the container stops; this only bounds cancellation
_LOG_DRAIN_S = 60.0
MEMORY_MOUNT = "/pox-memory"
_DEFAULT_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILDER_PREFIX = "https://pox.dev/backends/docker"
CONTAINER_SOURCE_CACHE = "/tmp/pox-source-cache"
_SOURCE_CACHE_ARG = re.compile(r"--runtime-source-cache-path\s+('[^']*'|\S+)")
# A storage plugin's setting and its values (Snakemake has no core option named --storage-*).
_STORAGE_PLUGIN_ARG = re.compile(r" --storage-[a-z0-9-]+(?:\s+(?!--)(?:'[^']*'|[^\s']+))*")


@dataclass(frozen=True)
class ImageIdentity:
    """An image as the engine holds it: the reference a rule named, its id and measurement."""

    ref: str
    image_id: str
    measurement: str
    search_path: str = _DEFAULT_SEARCH_PATH  # the image's own PATH

    @property
    def digest(self) -> str:
        return f"sha256:{self.measurement}"

    @property
    def builder_id(self) -> str:
        return f"{BUILDER_PREFIX}@sha256:{self.measurement}"


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


def container_command(command: str) -> str:
    """The job's command as it runs in the image.

    The host's interpreter becomes the image's `python3`, and Snakemake's runtime source cache
    (a host directory under the invoking user's home) becomes a container-private one in /tmp.
    The settings of the host's storage plugins are dropped: the images carry Snakemake without
    any (`enclave_images/snakemake-requirements.txt`), and its parser refuses unknown options.
    """
    for exe in {sys.executable, os.path.realpath(sys.executable)}:
        for form in (shlex.quote(exe), exe):
            command = command.replace(f"{form} -m snakemake", "python3 -m snakemake")
    command = _STORAGE_PLUGIN_ARG.sub("", command)
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
    """One container per job through the Docker Engine API; see the module docstring."""

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
        self._jobs = RunningJobs()
        self._engine: str | None = None
        self._default: ImageIdentity | None = None
        self._guest: GuestClient | None = None

    # -- preparation -------------------------------------------------------------------------

    def prepare(self, workdir: Path) -> None:
        self._workdir = workdir
        self._stage_root = stage_root_for(workdir, self._stage_root)
        if any(ch in str(workdir) or ch in str(self._stage_root) for ch in OVERLAY_FORBIDDEN):
            raise EnclaveError(
                f"path {workdir} contains a character overlayfs options cannot carry"
            )
        self._engine = engine.engine_version()
        if self._engine is None:
            raise EnclaveError(
                "the docker backend needs a running Docker engine and none answers at "
                f"{os.environ.get('DOCKER_HOST') or 'the default socket'}",
                hint="start it with `bash scripts/start-dockerd.sh` (root), set DOCKER_HOST, or "
                "choose --pox-backend sim",
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
        inspected = engine.inspect_image(ref)
        if inspected is None:
            name = ref.split("/", 1)[-1].split(":", 1)[0]
            raise EnclaveError(
                f"image {ref!r} is not in the local Docker engine (PoX never pulls images)",
                hint=f"build it with `pox images build {name}` or load it with `docker load`",
            )
        identity = ImageIdentity(
            ref,
            str(inspected["Id"]),
            engine.measurement_of(inspected),
            _image_search_path(inspected),
        )
        with self._lock:
            self._images[ref] = identity
        return identity

    def guest_client(self) -> GuestClient:
        """The dataset client mounted into every container, built on first use (once a run):
        content-addressed under the stage root, so concurrent runs never replace a mounted one."""
        with self._lock:
            if self._guest is None:
                assert self._stage_root is not None
                self._stage_root.mkdir(parents=True, exist_ok=True)
                scratch = Path(tempfile.mkdtemp(prefix="guest-", dir=self._stage_root))
                built = build_guest_client(scratch / "client")
                final = self._stage_root / f"guest-client-{built.sha256[:32]}"
                if not final.is_dir():
                    os.replace(built.path, final)
                shutil.rmtree(scratch, ignore_errors=True)
                self._guest = GuestClient(final, built.sha256, built.files)
            return self._guest

    # -- identity: runtime-wide (the session record); each job's is in its RunOutcome ---------

    @property
    def isolated(self) -> bool:
        return True

    def describe_isolation(self) -> str:
        return self._describe(self._default)

    def _describe(self, image: ImageIdentity | None) -> str:
        where = (
            f"image {image.ref} (measurement {image.measurement[:16]}...)"
            if image
            else "image per rule"
        )
        return (
            f"docker {self._engine or '?'}: one container per job, {where}, read-only root, "
            f"uid {self._uid}, all capabilities dropped, no-new-privileges, no network unless the "
            "rule asks, private overlay of the working directory"
        )

    def measurement(self) -> str:
        document = {
            "backend": self.name,
            "engine": self._engine,
            "default_image": self._default.measurement if self._default else None,
        }
        return measurement_of_document(document)

    def image_digest(self) -> str:
        return f"sha256:{self.measurement()}"

    def builder_id(self) -> str:
        return f"{BUILDER_PREFIX}@sha256:{self.measurement()}"

    def evidence(self, report_data: bytes, *, measurement: str | None = None) -> Evidence:
        measurement = measurement or self.measurement()
        with self._lock:
            producer = self._producers.get(measurement)
            if producer is None:
                producer = SimProducer(measurement, platform_key=self._platform_key)
                self._producers[measurement] = producer
        return producer.produce(report_data)

    # -- running -----------------------------------------------------------------------------

    def run(self, spec: JobSpec, cancelled: threading.Event) -> RunOutcome:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        assert self._stage_root is not None
        sandbox = create_sandbox(self._stage_root / spec.invocation_id)
        merged = sandbox.stage / "merged"
        merged.mkdir()
        started = utc_now()
        code = 125
        image: ImageIdentity | None = None
        guest: GuestClient | None = None
        mounted = False
        env, passed = job_environment(
            os.environ,
            passthrough=spec.env_passthrough,
            job=spec.env,
            sandbox=_CONTAINER_PRIVATE,
            unset=_HOST_ONLY_VARIABLES,
        )
        with open(spec.log_path, "ab") as log_file:
            try:
                image = self.resolve(self._image_ref(spec))
                _own_output_parents(spec, sandbox, self._uid)
                _mount_overlay(spec.workdir, sandbox, merged)
                mounted = True
                self._hand_over(merged)
                guest = self.guest_client()
                env.update(
                    {
                        "POX_MEMORY_DIR": MEMORY_MOUNT,
                        "POX_ENCLAVE_MEASUREMENT": image.measurement,
                        "PATH": f"{GUEST_ROOT}/bin:{image.search_path}",
                    }
                )
                config = self._container_config(spec, image, merged, env, guest)
                log_file.write(
                    f"PoX docker backend: image {image.ref} ({image.image_id}, measurement "
                    f"{image.measurement}); container command: {config.command[-1]}\n".encode()
                )
                log_file.flush()
                code = self._run_container(config, spec.invocation_id, log_file, cancelled)
            except EnclaveError as exc:
                log_file.write(f"PoX docker backend: {exc.diagnostics()}\n".encode())
                code = 125
            finally:
                if mounted:
                    _umount(merged)
        finished = utc_now()
        with contextlib.suppress(OSError):
            merged.rmdir()
        result = commit_job_outputs(sandbox, spec.workdir, spec.outputs)
        if result.rejected:
            note_in_job_log(spec.log_path, *(f"PoX: {r}" for r in result.rejected))
            code = code or 1
        _restore_owner(spec)
        return RunOutcome(
            exit_code=code,
            started_on=started,
            finished_on=finished,
            isolated=True,
            isolation=self._describe(image or self._default),
            discarded_writes=summarize_discarded(result.discarded),
            image_digest=image.digest if image else None,
            measurement=image.measurement if image else None,
            builder_id=image.builder_id if image else None,
            environment_names=passed,
            extra_code=((GUEST_CODE_NAME, guest.sha256),) if guest else (),
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
            paths = [here]
            if rel.parts[:1] == (".snakemake",):
                paths += [here / name for name in files]
            for path in paths:
                # Snakemake (on the host) adds and removes its markers under .snakemake/ meanwhile
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(path, uid, uid)

    def _container_config(
        self,
        spec: JobSpec,
        image: ImageIdentity,
        merged: Path,
        env: dict[str, str],
        guest: GuestClient,
    ) -> ContainerConfig:
        wd = str(spec.workdir)
        cpus = max(1, min(spec.threads, os.cpu_count() or 1))
        mounts = [
            BindMount(source=str(merged), target=wd),
            BindMount(source=str(guest.path), target=GUEST_ROOT, read_only=True),
        ]
        mounts += [BindMount(e, e, read_only=True) for e in self._read_only_extras(spec)]
        return ContainerConfig(
            name=_container_name(spec.invocation_id),
            image=image.image_id,
            command=("sh", "-c", container_command(spec.command)),
            user=f"{self._uid}:{self._uid}",
            working_dir=wd,
            env=env,
            labels={"org.pox.invocation": spec.invocation_id},
            network=spec.network,
            mounts=tuple(mounts),
            tmpfs={
                PRIVATE_TMP: "rw,exec,nosuid,nodev,mode=1777",
                f"{wd}/.pox": "ro,nosuid,nodev,mode=0555",
                # dataset plaintext: memory only, the job user's alone, gone with the container
                MEMORY_MOUNT: f"rw,nosuid,nodev,noexec,mode=0700,uid={self._uid},gid={self._uid}",
            },
            nano_cpus=cpus * 10**9,
            memory_bytes=max(int(spec.mem_mb), 16) * 1024 * 1024 if spec.mem_mb else None,
            pids_limit=self._pids_limit,
        )

    def _read_only_extras(self, spec: JobSpec) -> list[str]:
        """Host paths outside the working directory the job reads: `JobSpec.readable` and the
        Snakefile's folder its command names. Mounted read-only at the same path."""
        candidates = [Path(p) for p in spec.readable]
        snakefile = _option_value(spec.command, "--snakefile")
        if snakefile:
            path = Path(snakefile)
            candidates.append(path if path.is_dir() else path.parent)
        extras = {
            str(path)
            for path in candidates
            if path.is_absolute() and path.exists() and not path.is_relative_to(spec.workdir)
        }
        return sorted(extras)

    def _run_container(
        self,
        config: ContainerConfig,
        invocation_id: str,
        log_file: BinaryIO,
        cancelled: threading.Event,
    ) -> int:
        """Create, start and wait for the job's container; its output goes to `log_file`."""
        name = config.name
        engine.create_container(config)
        try:
            stop = functools.partial(_stop_container, name)
            with self._jobs.running(invocation_id, stop):
                engine.start_container(name)
                copier = threading.Thread(
                    target=_copy_output, args=(name, log_file), name=f"logs-{name}", daemon=True
                )
                copier.start()
                code = wait_cancellable(
                    lambda timeout_s: engine.wait_container(name, timeout_s),
                    cancelled,
                    stop,
                    poll_s=_WAIT_POLL_S,
                )
                copier.join(timeout=_LOG_DRAIN_S)
            return code
        finally:
            engine.remove_container(name)

    def cancel_all(self) -> None:
        self._jobs.stop_all()


def _image_search_path(inspected: dict[str, object]) -> str:
    config = inspected.get("Config")
    env = config.get("Env") if isinstance(config, dict) else None
    for item in env if isinstance(env, list) else ():
        if isinstance(item, str) and item.startswith("PATH="):
            return item[len("PATH=") :]
    return _DEFAULT_SEARCH_PATH


def _container_name(invocation_id: str) -> str:
    return f"pox-job-{invocation_id}"


def _stop_container(name: str) -> None:
    try:
        engine.kill_container(name)
    except EnclaveError as exc:
        log.warning("PoX: could not stop container %s: %s", name, exc)


def _copy_output(name: str, log_file: BinaryIO) -> None:
    try:
        engine.copy_logs(name, log_file)
    except EnclaveError as exc:
        log_file.write(f"PoX docker backend: {exc}\n".encode())


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
