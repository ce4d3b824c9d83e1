"""Running one external build step (mmdebstrap, pip, chroot) with its output kept for errors."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from pox_executor.errors import EnclaveError

Log = Callable[[str], None]


def quiet(_: str) -> None:
    return None


def run_step(argv: Sequence[str], log: Log, *, env: dict[str, str] | None = None) -> None:
    """Run a build command; on failure raise EnclaveError with the tail of its output."""
    log("$ " + " ".join(argv)[:300])
    result = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise EnclaveError(f"{argv[0]} failed (exit {result.returncode}):\n" + "\n".join(tail))
