"""The registry of enclave runtimes: maps a `--pox-backend` name to a constructor.

Backends register here and nowhere else; the plugin and the CLI only call `create_runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pox_executor.enclave.runtime import EnclaveRuntime
from pox_executor.errors import UsageError


@dataclass(frozen=True)
class BackendOptions:
    """Settings every backend receives (each uses what applies to it)."""

    isolate: bool = True
    default_image: str | None = None
    shared_home: bool = False  # one home directory for all jobs of the run (sim)
    # where per-job stages go (sim); None: `<workdir>/.pox/stage`. A dispatched jobstep gets its
    # own, since several run at once on one shared working directory.
    stage_root: Path | None = None


def _sim(options: BackendOptions) -> EnclaveRuntime:
    from pox_executor.enclave.sim import SimRuntime

    return SimRuntime(
        isolate=options.isolate, shared_home=options.shared_home, stage_root=options.stage_root
    )


def _docker(options: BackendOptions) -> EnclaveRuntime:
    from pox_executor.enclave.docker import DockerRuntime

    return DockerRuntime(default_image=options.default_image)


_BACKENDS: dict[str, Callable[[BackendOptions], EnclaveRuntime]] = {"sim": _sim, "docker": _docker}


def register_backend(name: str, factory: Callable[[BackendOptions], EnclaveRuntime]) -> None:
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_runtime(name: str, options: BackendOptions | None = None) -> EnclaveRuntime:
    factory = _BACKENDS.get(name)
    if factory is None:
        raise UsageError(
            f"unknown backend {name!r}; available: {', '.join(backend_names())}",
            hint="choose one with --pox-backend",
        )
    return factory(options or BackendOptions())
