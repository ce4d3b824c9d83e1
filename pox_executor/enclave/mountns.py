"""Private mount namespaces made in-process: the overlay mounts of a job's sandbox without
starting `unshare`, `sh` and `mount` for every job.

The sim backend's sandbox needs its overlays mounted in a mount namespace of the job's own,
before bubblewrap assembles the view inside it (`isolation.sandbox_launch`). Started as processes
that is `unshare`, which execs `sh`, which runs `mount` once per overlay and execs bubblewrap:
three or four program starts per job, about 6 ms of a job's 16 ms sandbox start on the 2-core
reference machine. Here the same steps are system calls made by one short-lived thread:

- `unshare(CLONE_NEWNS | CLONE_FS)` gives the calling thread (only it: its file-system context is
  unshared too) a copy of the host's mount namespace, whose mounts are then made private, as
  `unshare --propagation private` does;
- `mount(2)` mounts each overlay there, `volatile` where the kernel has it (see isolation.py);
- the thread starts bubblewrap, which inherits the namespace, and waits for it.

The namespace disappears, and the overlays with it, once the job's last process and the thread
have exited, as with the `unshare` chain. The thread does nothing else: bubblewrap's
`--die-with-parent` fires when the thread that started it exits (the parent-death signal follows
the parent thread), so it lives exactly as long as the job.

Root only (CAP_SYS_ADMIN in the initial user namespace): an unprivileged process would need a user
namespace, which the kernel refuses to a multi-threaded process, so the sim backend keeps the
`unshare` chain there (and wherever the probe of this path fails).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TypeVar

CLONE_NEWNS = 0x00020000
CLONE_FS = 0x00000200
MS_REC = 0x4000
MS_PRIVATE = 0x40000

T = TypeVar("T")


class MountNamespaceError(OSError):
    """A system call setting up a job's mount namespace failed; the message names it."""


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare.argtypes = [ctypes.c_int]
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    return libc


def supported() -> bool:
    """Whether this process may make mount namespaces itself (Linux, running as root)."""
    return sys.platform.startswith("linux") and os.geteuid() == 0


def _fail(what: str) -> MountNamespaceError:
    errno = ctypes.get_errno()
    return MountNamespaceError(errno, f"{what}: {os.strerror(errno)}")


def enter_private_mount_namespace() -> None:
    """Give the calling thread its own mount namespace with private propagation."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS | CLONE_FS) != 0:
        raise _fail("unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise _fail("making / private in the job's mount namespace")


def mount_overlay(options: str, target: str) -> None:
    """Mount an overlay at `target` in the calling thread's namespace: `volatile` when the
    kernel accepts it (Linux 5.10+), else plain, as the `unshare` chain does."""
    libc = _libc()
    source, fstype, path = b"pox-job", b"overlay", os.fsencode(target)
    if libc.mount(source, path, fstype, 0, os.fsencode(options + ",volatile")) == 0:
        return
    if libc.mount(source, path, fstype, 0, os.fsencode(options)) != 0:
        raise _fail(f"mounting the job's overlay at {target}")


def run_with_overlays(overlays: Sequence[tuple[str, str]], job: Callable[[], T]) -> T:
    """Run `job` on a new thread inside a private mount namespace holding `overlays`
    (`(options, mount point)` pairs); its result, or the exception it or the mounts raised."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            enter_private_mount_namespace()
            for options, target in overlays:
                mount_overlay(options, target)
            outcome.append(job())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name="pox-job-namespace", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
