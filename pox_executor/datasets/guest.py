"""The dataset client a container job runs: `pox dataset open|seal` without PoX in the image.

The enclave images carry Python and Snakemake but not PoX or `cryptography`. The docker backend
therefore mounts a small self-contained client read-only into each job's container (at
`GUEST_ROOT`): `bin/pox` plus a `lib/` holding this package's pure-Python modules and the few
third-party packages they import (`cryptography` with its `cffi` backend, `rfc8785`), copied from
the host's installation. Only `pox dataset open` and `pox dataset seal` (and `unseal`, `cid`)
run there: the client is the job's side of a confidential dataset, nothing else.

The client is code the job runs, so its identity is recorded: `GuestClient.sha256` is SHA-256
over the RFC 8785 JSON of its sorted `(relative path, file SHA-256)` list, and the statement lists
it among the job's code (`pox:guest-client`). Its files and the host interpreter's ABI must match
the image's (CPython 3.11 on glibc here, as both the host's .venv and the images' Debian bookworm
are); `build_guest_client` checks the versions it can and says which it copied.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import rfc8785

from pox_executor.errors import EnclaveError

GUEST_ROOT = "/opt/pox-guest"
GUEST_CODE_NAME = "pox:guest-client"
# Top-level packages and modules `pox dataset open|seal` imports beyond the standard library
# (checked by tests/datasets/test_guest_client.py against what the client really imports).
_THIRD_PARTY = ("cryptography", "cffi", "_cffi_backend", "rfc8785")
_SKIP = ("__pycache__",)
_LAUNCHER = f"""#!/usr/bin/env python3
# PoX guest client (pox_executor.datasets.guest): `pox dataset open|seal|unseal|cid` only.
import sys

sys.path.insert(0, "{GUEST_ROOT}/lib")
sys.dont_write_bytecode = True
from pox_executor.datasets.guest import guest_main

sys.exit(guest_main(sys.argv[1:]))
"""
_GUEST_COMMANDS = ("open", "seal", "unseal", "cid")


@dataclass(frozen=True)
class GuestClient:
    """A built client folder (mounted read-only at GUEST_ROOT) and its identity."""

    path: Path
    sha256: str
    files: int


def _module_path(name: str) -> Path:
    module = importlib.import_module(name)
    file = getattr(module, "__file__", None)
    if file is None:
        raise EnclaveError(f"the guest client needs {name}, which has no file to copy")
    path = Path(file)
    return path.parent if path.name == "__init__.py" else path


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns(*_SKIP, "*.pyc"), symlinks=False
        )
    else:
        shutil.copy2(source, target)


def client_digest(folder: Path) -> tuple[str, int]:
    """SHA-256 of the RFC 8785 JSON of the folder's sorted (path, sha256) list; file count."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        entries.append([path.relative_to(folder).as_posix(), _file_sha256(path)])
    return hashlib.sha256(rfc8785.dumps(entries)).hexdigest(), len(entries)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_guest_client(destination: Path) -> GuestClient:
    """Build the client into `destination` (replaced if it exists); world-readable, since the
    container's job user is not the host's."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        raise EnclaveError(
            f"the docker backend's dataset client is copied from this interpreter (Python "
            f"{sys.version.split()[0]}), but the enclave images run CPython 3.11",
            hint="run snakemake from a CPython 3.11 environment to use confidential datasets "
            "with --pox-backend docker",
        )
    staging = destination.with_name(destination.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    lib = staging / "lib"
    lib.mkdir(parents=True)
    _copy(_module_path("pox_executor"), lib / "pox_executor")
    for name in _THIRD_PARTY:
        source = _module_path(name)
        _copy(source, lib / source.name)
    (staging / "bin").mkdir()
    launcher = staging / "bin" / "pox"
    launcher.write_text(_LAUNCHER, encoding="utf-8")
    for root, _dirs, files in os.walk(staging):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(Path(root) / name, 0o644)
    launcher.chmod(0o755)
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(staging, destination)
    digest, count = client_digest(destination)
    return GuestClient(destination, digest, count)


def guest_main(argv: list[str]) -> int:
    """`pox` inside a container: only the dataset commands a job needs."""
    if len(argv) < 2 or argv[0] != "dataset" or argv[1] not in _GUEST_COMMANDS:
        print(
            "pox (guest client in the container): only `pox dataset "
            + "|".join(_GUEST_COMMANDS)
            + " ...` run here; the other commands run on the host",
            file=sys.stderr,
        )
        return 2
    from pox_executor.cli import main

    return main(argv, modules=("pox_executor.cli.dataset",))
