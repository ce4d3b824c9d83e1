"""The Docker Engine API as PoX uses it, through the `docker` SDK (one client per process).

This module owns the connection to the engine (`DOCKER_HOST`, `DOCKER_TLS_VERIFY` and
`DOCKER_CERT_PATH` are honoured, as by the docker CLI; `POX_DOCKER_TIMEOUT` bounds one call),
the translation of every engine failure
into an `EnclaveError` that names the image or container and what to do, the image calls that
the docker backend and the image builder share (inspect, measurement, list, import, tag, remove),
and the container calls of the docker backend (create, start, wait, logs, kill, remove). Every
call is one HTTP request to the engine's socket: no `docker` process is started.

It knows nothing of recipes, builds, overlays or statements. The measurement of an image is
defined here because both sides need it: the builder checks it after an import, the backend
records it for each job.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import requests.exceptions
from docker.types import Mount  # type: ignore[import-untyped]

from pox_executor.errors import EnclaveError

# The numeric user every job container runs as; the image builder adds it to /etc/passwd.
JOB_UID = 65532
JOB_USER = "pox"
_START_HINT = "start it with `bash scripts/start-dockerd.sh` (root), or point DOCKER_HOST at one"
_POOL_CONNECTIONS = 64  # one long-polling wait per running job, plus the short calls
DEFAULT_TIMEOUT_S = 300.0
_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


class EngineUnavailable(EnclaveError):
    """No Docker engine answers at DOCKER_HOST (or the default socket)."""


class EngineTimeout(EngineUnavailable):
    """The engine did not answer one call within `POX_DOCKER_TIMEOUT` seconds."""


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


def call_timeout_s() -> float:
    """How long one engine call may take: `POX_DOCKER_TIMEOUT` seconds, default 300.

    The SDK's default (60 s) was too short on a loaded machine: after a big image build the
    engine took longer than that to answer (seen at load 37).
    """
    raw = os.environ.get("POX_DOCKER_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise EnclaveError(f"POX_DOCKER_TIMEOUT={raw!r} is not a number of seconds above 0")
    return value


def client() -> Any:
    """The low-level API client for the engine DOCKER_HOST names (created once per address)."""
    timeout = call_timeout_s()
    key = f"{os.environ.get('DOCKER_HOST', '')}|{timeout}"
    with _client_lock:
        known = _clients.get(key)
        if known is not None:
            return known
        try:
            made = docker.from_env(max_pool_size=_POOL_CONNECTIONS, timeout=timeout).api
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(
                f"no Docker engine answers at {_where()}: {_first_line(exc)}", hint=_START_HINT
            ) from exc
        _clients[key] = made
        return made


def engine_version() -> str | None:
    """The engine's server version, or None when no engine answers."""
    try:
        return str(client().version()["Version"])
    except (EnclaveError, docker.errors.DockerException, requests.exceptions.RequestException):
        return None


@contextmanager
def _engine_call(what: str, hint: str | None = None) -> Iterator[None]:
    """Run engine calls; any failure becomes an EnclaveError saying `what` failed and why."""
    try:
        yield
    except docker.errors.APIError as exc:
        raise EnclaveError(f"{what}: {exc.explanation or exc}", hint=hint) from exc
    except requests.exceptions.Timeout as exc:
        raise EngineTimeout(
            f"{what}: the engine at {_where()} did not answer within {call_timeout_s():.0f} s",
            hint="the machine may be overloaded: wait, or allow more time with "
            "POX_DOCKER_TIMEOUT=SECONDS",
        ) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(
            f"{what}: the engine at {_where()} did not answer ({_first_line(exc)})",
            hint=_START_HINT,
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# -- images --------------------------------------------------------------------------------------


def inspect_image(ref: str) -> dict[str, Any] | None:
    """The engine's inspect document of one image, or None when the engine does not hold it."""
    api = client()
    try:
        with _engine_call(f"inspecting image {ref!r}"):
            return dict(api.inspect_image(ref))
    except EnclaveError as exc:
        if isinstance(exc.__cause__, docker.errors.ImageNotFound):
            return None
        raise


def measurement_of(inspected: Mapping[str, Any]) -> str:
    """The measurement of an image from its inspect document.

    Single-layer images (every `pox images build` image, any `docker import`) are measured by the
    layer digest, i.e. the SHA-256 of the root filesystem tar. A multi-layer image is measured by
    its image id, the digest of its config, which lists every layer's digest in order.
    """
    layers = list(inspected.get("RootFS", {}).get("Layers") or [])
    if len(layers) == 1:
        return str(layers[0]).removeprefix("sha256:")
    return str(inspected.get("Id", "")).removeprefix("sha256:")


def image_ids_labelled(label: str) -> list[str]:
    """Ids of the tagged images that carry `label`, sorted."""
    with _engine_call(f"listing the images labelled {label}"):
        ids = client().images(quiet=True, filters={"label": label, "dangling": False})
    return sorted({str(i) for i in ids})


def import_image(tar_path: Path, repository: str, tag: str, changes: Sequence[str]) -> None:
    """`docker import` of a root filesystem tar as `repository:tag`, streamed from the file."""
    if not tar_path.is_file():  # the SDK would take a missing path for a URL to fetch
        raise EnclaveError(f"cannot import {tar_path}: no such file")
    what = f"importing {tar_path} as {repository}:{tag}"
    with _engine_call(what):
        answer = client().import_image_from_file(
            str(tar_path), repository=repository, tag=tag, changes=list(changes)
        )
    if '"error' in str(answer):
        raise EnclaveError(f"{what}: the engine answered {str(answer).strip()[:500]}")


def tag_image(image: str, repository: str, tag: str) -> None:
    with _engine_call(f"tagging image {image} as {repository}:{tag}"):
        client().tag(image, repository, tag)


def remove_image(image: str) -> bool:
    """Remove an image; False (and nothing removed) when it is in use or still tagged elsewhere."""
    try:
        with _engine_call(f"removing image {image}"):
            client().remove_image(image)
    except EnclaveError:
        return False
    return True


# -- containers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindMount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    """One job container: what runs, as whom, with which mounts, limits and privileges."""

    name: str
    image: str
    command: tuple[str, ...]
    user: str
    working_dir: str
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    network: bool = False
    mounts: tuple[BindMount, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    read_only_root: bool = True
    drop_all_capabilities: bool = True
    no_new_privileges: bool = True
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    pids_limit: int | None = None


def create_container(config: ContainerConfig) -> None:
    """Create (not start) the container; the image must be local (the engine never pulls here)."""
    api = client()
    with _engine_call(
        f"creating container {config.name} from image {config.image}",
        hint="is the image still in the engine? `pox images list`",
    ):
        host_config = api.create_host_config(
            mounts=[
                Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only)
                for m in config.mounts
            ],
            tmpfs=dict(config.tmpfs),
            network_mode="bridge" if config.network else "none",
            cap_drop=["ALL"] if config.drop_all_capabilities else None,
            security_opt=["no-new-privileges"] if config.no_new_privileges else None,
            read_only=config.read_only_root,
            nano_cpus=config.nano_cpus,
            mem_limit=config.memory_bytes,
            pids_limit=config.pids_limit,
        )
        api.create_container(
            config.image,
            command=list(config.command),
            name=config.name,
            user=config.user,
            working_dir=config.working_dir,
            environment=dict(config.env),
            labels=dict(config.labels),
            host_config=host_config,
        )


def start_container(name: str) -> None:
    with _engine_call(f"starting container {name}"):
        client().start(name)


def wait_container(name: str, timeout_s: float) -> int | None:
    """The container's exit code once it stopped, or None if it still runs after `timeout_s`."""
    try:
        with _engine_call(f"waiting for container {name}"):
            result = client().wait(name, timeout=timeout_s)
    except EngineUnavailable as exc:
        if isinstance(exc.__cause__, requests.exceptions.ConnectionError | requests.Timeout):
            # A read timeout on the engine's socket is the expected "still running"; make sure
            # the engine itself is still there before saying so.
            with _engine_call(f"inspecting container {name}"):
                client().inspect_container(name)
            return None
        raise
    return int(result.get("StatusCode", 125))


def copy_logs(name: str, sink: BinaryIO) -> None:
    """Copy the container's output (stdout and stderr, in order) into `sink` until it stops."""
    with _engine_call(f"reading the output of container {name}"):
        for chunk in client().logs(name, stream=True, follow=True, stdout=True, stderr=True):
            sink.write(chunk)
            sink.flush()


def kill_container(name: str) -> None:
    """Kill the container if it runs; a container that already stopped or is gone is fine."""
    try:
        with _engine_call(f"killing container {name}"):
            client().kill(name)
    except EnclaveError as exc:
        if not isinstance(exc.__cause__, docker.errors.APIError):
            raise


def remove_container(name: str) -> None:
    """Remove the container (killing it first if needed); one that is gone already is fine."""
    try:
        with _engine_call(f"removing container {name}"):
            client().remove_container(name, force=True)
    except EnclaveError as exc:
        if not isinstance(exc.__cause__, docker.errors.NotFound):
            raise
