"""The bubblewrap sandbox of the `sim` backend: what a job sees, and where its writes go.

A job sees an allowlisted view of the filesystem, never the host's whole tree: the system trees
(`/usr`, `/etc`, `/opt`, `/sys`, the `/bin`-style links) read-only, the interpreter that runs
Snakemake and the prefixes of the `PATH` read-only, the paths the job must read (`JobSpec.readable`:
workflow sources, scripts, inputs outside the working directory) read-only, a private writable
`/tmp` and `$HOME` (both in the job's stage, discarded afterwards), a fresh `/dev`, `/proc` and
`/run`, and its working directory through an overlayfs whose upper layer is private to the job.
Declared outputs outside the working directory get an overlay of their directory as well. So:

- no host Unix socket is reachable: `/run`, `/tmp`, `$HOME`, `/var` and every directory outside
  the view do not exist in the job, and a socket seen through an overlay refuses connections
  (the overlay inode is not the bound socket's); abstract sockets belong to the network
  namespace, which is private unless the rule asks for the network. A read-only bind would not
  do: `connect()` on a socket needs no write access to the file system it lives on;
- PoX's own state is out of reach: `.pox/` of the working directory (and of every exposed
  directory), PoX's configuration and data directories are covered by empty tmpfs mounts, and
  as root the host's secret files in `/etc` (shadow, host keys) are masked;
- no capabilities (`--cap-drop ALL`), new namespaces for everything (the network only with
  `network=True`).

The overlays are mounted in a private mount namespace, then bubblewrap assembles the view inside
it (`SandboxLaunch`): as root the namespace and the mounts are system calls of a thread of PoX
(`mountns`), otherwise programs (`unshare --user --map-root-user --mount`, which execs `sh`, which
runs `mount` and execs bubblewrap). The view itself is argv only. The overlays are mounted
`volatile` where the kernel allows it (5.10+): the private upper layer is thrown away after the
job, so the unmount need not sync the whole upper file system (it did: 0.8 s after a 1 GiB
output); the committed outputs are then as durable as under the local executor, which syncs
nothing either.
See docs/isolation.md for each rule, why, and the setting that lifts it.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pox_executor.enclave import mountns
from pox_executor.enclave.runtime import OutputSpec

T = TypeVar("T")

# Characters overlayfs mount options cannot carry in a path (the sim and docker backends check).
OVERLAY_FORBIDDEN = (",", ":", "\\", "\n", "\t")
# Read-only system trees every job sees (those that exist; top-level symlinks are recreated).
SYSTEM_TREES = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/sys",
    "/nix/store",
    "/var/lib/texmf",
    "/var/cache/fontconfig",
)
# Host secrets inside the system trees that uid 0 could read by ownership even without
# capabilities: masked when PoX runs as root (an ordinary user cannot read them anyway).
_ROOT_ONLY_SECRETS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/krb5.keytab",
    "/etc/munge",
    "/etc/wireguard",
    "/etc/credstore",
    "/etc/credstore.encrypted",
    "/etc/NetworkManager/system-connections",
    "/etc/letsencrypt",
    "/etc/docker/key.json",
)
# Directories a job gets privately; an output directly inside one is staged there.
PRIVATE_TMP = "/tmp"
FALLBACK_HOME = "/pox-home"
# Host variables naming the host's own per-user directories: unset in the job, whose home is
# private (tools then use ~/.cache and friends inside it).
HOST_DIRECTORY_VARIABLES = (
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
)
# Runtime and kernel trees: never exposed from the host, never an output's place.
_KERNEL_TREES = ("/run", "/var/run", "/proc", "/dev", "/sys")
# Above this many read-only paths, files are exposed through their directories (argv size).
_MAX_READABLE_BINDS = 512


class SandboxError(ValueError):
    """A job cannot be sandboxed as asked (a path the overlay cannot carry, an output in `/`)."""


class _OverlayStage:
    """The folders of one private overlay under `stage`: its upper layer, work and mount point."""

    stage: Path

    @property
    def upper(self) -> Path:
        return self.stage / "upper"

    @property
    def work(self) -> Path:
        return self.stage / "work"

    @property
    def merged(self) -> Path:
        return self.stage / "merged"


@dataclass(frozen=True)
class WritableRoot(_OverlayStage):
    """A directory outside the working directory holding declared outputs: a private overlay."""

    path: str  # the real (symlink-free) directory on the host
    stage: Path


@dataclass
class Sandbox(_OverlayStage):
    """One job's stage: its private writes live here until committed or discarded; its own
    overlay is the working directory's."""

    stage: Path
    home: Path | None = None  # a shared home directory; None = private to the job
    home_on_disk: bool = False  # private home in the stage (an output lies in it), else tmpfs
    roots: list[WritableRoot] = field(default_factory=list)

    @property
    def tmp(self) -> Path:
        return self.stage / "tmp"

    @property
    def home_source(self) -> Path:
        return self.home if self.home is not None else self.stage / "home"


@lru_cache(maxsize=1)
def bubblewrap_version() -> str | None:
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def create_sandbox(stage: Path, *, home: Path | None = None, spare: Path | None = None) -> Sandbox:
    """A fresh stage for one job (an older one at the same place is removed); `spare`: a clean
    stage a finished job left (`commit.take_spare_stage`), renamed into place when it can be."""
    sandbox = Sandbox(stage, home=home)
    try:
        if spare is None:
            raise FileNotFoundError
        os.rename(spare, stage)
    except OSError:
        if spare is not None:
            shutil.rmtree(spare, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)
        for directory in (sandbox.upper, sandbox.work, sandbox.tmp):
            directory.mkdir(parents=True)
    if home is not None:
        (home / ".cache").mkdir(parents=True, exist_ok=True)
    return sandbox


def job_home() -> str:
    """Where the job's private home is mounted: the host's $HOME path when it is a usable one."""
    home = os.environ.get("HOME", "")
    if not os.path.isabs(home) or os.path.normpath(home) == "/":
        return FALLBACK_HOME
    home = os.path.normpath(home)
    if any(is_within(home, tree) for tree in SYSTEM_TREES) or home == PRIVATE_TMP:
        return FALLBACK_HOME
    return home


def plan_outputs(sandbox: Sandbox, workdir: Path, outputs: Sequence[OutputSpec]) -> None:
    """Give `sandbox` a writable overlay for each directory outside `workdir` holding an output.

    The directory is the output's real parent (created when missing, as Snakemake would); an
    output directly in the private /tmp or $HOME is staged there instead.
    """
    outermost, home_on_disk = output_places(workdir, outputs, shared_home=sandbox.home is not None)
    if home_on_disk:
        sandbox.home_on_disk = True
        (sandbox.home_source / ".cache").mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(outermost):
        root = WritableRoot(path=path, stage=sandbox.stage / "roots" / str(index))
        for directory in (root.upper, root.work, root.merged):
            directory.mkdir(parents=True)
        sandbox.roots.append(root)


def output_places(
    workdir: Path, outputs: Sequence[OutputSpec], *, shared_home: bool
) -> tuple[list[str], bool]:
    """Where a job's outputs need more than the working directory's overlay: the outermost real
    directories outside `workdir` holding outputs (created when missing, as Snakemake would),
    and whether an output lies directly in a private home (which then lives on disk).
    Raises SandboxError for an output no job may write (PoX's state, kernel trees, `/`)."""
    real_workdir = os.path.realpath(workdir)
    wanted: list[str] = []
    home_on_disk = False
    state = pox_state_dirs()
    for out in outputs:
        location = host_location(workdir, out.path)
        parent = os.path.dirname(location)
        if ".pox" in location.split("/") or any(is_within(location, d) for d in state):
            raise SandboxError(f"declared output {out.path!r} lies in PoX's own state")
        if any(is_within(location, d) for d in _KERNEL_TREES):
            raise SandboxError(f"declared output {out.path!r} lies in {location.split('/')[1]}/")
        if is_within(parent, real_workdir):
            continue
        if parent == job_home() and not shared_home:
            home_on_disk = True
            continue
        if parent in (PRIVATE_TMP, job_home()):
            continue
        if parent == "/":
            raise SandboxError(f"declared output {out.path!r}: outputs directly in / are refused")
        os.makedirs(parent, exist_ok=True)
        wanted.append(parent)
    outermost: list[str] = []
    for path in sorted(set(wanted), key=lambda p: (p.count("/"), p)):
        if not any(is_within(path, o) for o in outermost):
            outermost.append(path)
    for path in outermost:
        if any(ch in path for ch in OVERLAY_FORBIDDEN):
            raise SandboxError(f"output directory {path!r} contains a character overlayfs refuses")
    return outermost, home_on_disk


def host_location(workdir: Path, path: str) -> str:
    """Where an output (relative to workdir, `../x` or absolute) lives on the host, symlinks of
    its directory resolved."""
    location = os.path.normpath(os.path.join(workdir, path))
    return os.path.join(os.path.realpath(os.path.dirname(location)), os.path.basename(location))


@dataclass(frozen=True)
class SandboxLaunch:
    """How to start one sandboxed job: the overlays to mount in a private mount namespace, then
    bubblewrap (`bwrap`, an argv) inside that namespace."""

    overlays: tuple[tuple[str, str], ...]  # (overlayfs options, mount point)
    bwrap: tuple[str, ...]

    def chain(self) -> list[str]:
        """One argv doing it all with programs: `unshare` makes the namespace (with a user
        namespace when not root) and execs `sh`, which mounts each overlay and execs bubblewrap.
        `mountns.run_with_overlays` does the first two steps without starting programs."""
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare[1:1] = ["--user", "--map-root-user"]
        # `volatile` (Linux 5.10+): the overlay's unmount, when the job's last process exits,
        # does not sync the whole upper file system (0.8 s after a 1 GiB output, more under other
        # writers' load, on every job's path); without it (older kernels) the plain mount.
        mount_then_exec = (
            'while [ "$1" != -- ]; do mount -t overlay pox-job -o "$1,volatile" "$2" 2>/dev/null '
            '|| mount -t overlay pox-job -o "$1" "$2" || exit 125; shift 2; done; shift; exec "$@"'
        )
        pairs = [item for pair in self.overlays for item in pair]
        shell = ["sh", "-c", mount_then_exec, "pox-sandbox", *pairs, "--"]
        return [*unshare, "--", *shell, *self.bwrap]

    def start(self, start: Callable[[list[str]], T], *, in_process: bool) -> T:
        """`start(argv)` for this sandbox, the one place that picks the way: bubblewrap from a
        thread holding a mount namespace made in-process (`mountns`, root only), else the
        `unshare` chain. Raises `mountns.MountNamespaceError` when an in-process mount fails."""
        if in_process:
            return mountns.run_with_overlays(self.overlays, lambda: start(list(self.bwrap)))
        return start(self.chain())


def sandbox_launch(
    command: str | Sequence[str],
    *,
    workdir: Path,
    sandbox: Sandbox,
    network: bool,
    hidden: Sequence[Path] = (),
    visible: Sequence[Path | str] = (),
    memo: ViewMemo | None = None,
) -> SandboxLaunch:
    """The overlays and the bubblewrap argv that run `command` in the sandbox described in the
    docstring: a string through `sh -c`, a sequence (program and arguments) directly.

    `visible`: paths the job reads (read-only); `hidden`: paths covered by an empty tmpfs;
    `memo`: the run's memo of read-only binds (most jobs of a run see the same paths).
    """
    wd = os.path.normpath(workdir)
    for path in (wd, str(sandbox.stage)):
        if any(ch in path for ch in OVERLAY_FORBIDDEN):
            raise SandboxError(f"path {path!r} contains a character overlayfs options cannot carry")
    overlays = _overlay_mounts(sandbox, wd)
    home = job_home()
    bwrap = [
        _program("bwrap"),
        "--unshare-all",
        *(["--share-net"] if network else []),
        "--die-with-parent",
        "--new-session",
        *_system_view(),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/var/tmp",
        "--bind",
        str(sandbox.tmp),
        PRIVATE_TMP,
    ]
    if sandbox.home is not None or sandbox.home_on_disk:
        home_mount = ["--bind", str(sandbox.home_source), home]
    else:  # in memory: nothing to create or remove on disk per job
        home_mount = ["--tmpfs", home, "--dir", os.path.join(home, ".cache")]
    mounts: list[tuple[str, list[str]]] = [(home, home_mount)]
    covered = [wd, *(r.path for r in sandbox.roots)]
    exposed: list[str] = list(covered)  # the private home is PoX-free
    for bind in (memo or ViewMemo()).readable_binds(visible, covered):
        mounts.append((bind.dest, ["--ro-bind-try", bind.source, bind.dest]))
        exposed.append(bind.dest)
    for root in sandbox.roots:
        mounts.append((root.path, ["--bind", str(root.merged), root.path]))
    mounts.append((wd, ["--bind", str(sandbox.merged), wd]))
    mounts.sort(key=lambda m: m[0].count("/"))  # parents before what is mounted inside them
    for _, args in mounts:
        bwrap += args
    for path in _hidden(hidden, exposed, wd, [r.path for r in sandbox.roots]):
        bwrap += ["--tmpfs", path]
    bwrap += _masked_secrets()
    if network:
        resolv = os.path.realpath("/etc/resolv.conf")
        if resolv != "/etc/resolv.conf" and not any(is_within(resolv, t) for t in SYSTEM_TREES):
            bwrap += ["--ro-bind-try", resolv, resolv]
    # Writes anywhere else fail loudly ("Read-only file system") instead of vanishing.
    bwrap += ["--remount-ro", "/", "--chdir", wd, "--cap-drop", "ALL"]
    argv = [_program("sh"), "-c", command] if isinstance(command, str) else list(command)
    if not argv:
        raise SandboxError("a job needs a program to run")
    bwrap += ["--", *argv]
    return SandboxLaunch(overlays=tuple(overlays), bwrap=tuple(bwrap))


@lru_cache(maxsize=4)
def _program(name: str) -> str:
    """`name` as found on this process's PATH (the same prefixes the job sees), so neither
    PoX nor bubblewrap tries each PATH entry in turn per job; the bare name when not found."""
    return shutil.which(name) or name


def _overlay_mounts(sandbox: Sandbox, workdir: str) -> list[tuple[str, str]]:
    """(options, mount point): the working directory's overlay, then one per output root."""
    sandbox.merged.mkdir(exist_ok=True)
    layers = [(workdir, sandbox.upper, sandbox.work, sandbox.merged)]
    layers += [(r.path, r.upper, r.work, r.merged) for r in sandbox.roots]
    return [
        (f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged))
        for lower, upper, work, merged in layers
    ]


@lru_cache(maxsize=1)
def _system_view() -> tuple[str, ...]:
    args: list[str] = []
    for tree in SYSTEM_TREES:
        if os.path.islink(tree):
            args += ["--symlink", os.readlink(tree), tree]
        elif os.path.isdir(tree):
            args += ["--ro-bind", tree, tree]
    return tuple(args)


@lru_cache(maxsize=1)
def _masked_secrets() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    args: list[str] = []
    for pattern in _ROOT_ONLY_SECRETS:
        for path in sorted(glob.glob(pattern)):
            if os.path.islink(path):
                continue
            if os.path.isdir(path):
                args += ["--tmpfs", path]
            else:
                args += ["--ro-bind", "/dev/null", path]
    return tuple(args)


@dataclass(frozen=True)
class _Bind:
    source: str
    dest: str


class ViewMemo:
    """One run's memo of the read-only binds for a set of visible paths: resolving them
    (symlinks, sockets, PoX's state) was a third of a job's Python time, and the jobs of a run
    mostly see the same sources. Owned by one runtime; a new run starts a new memo."""

    _LIMIT = 256

    def __init__(self) -> None:
        self._binds: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[_Bind, ...]] = {}
        self._lock = threading.Lock()

    def readable_binds(
        self, visible: Iterable[Path | str], covered: Sequence[str]
    ) -> tuple[_Bind, ...]:
        key = (tuple(str(p) for p in visible), tuple(covered))
        with self._lock:
            found = self._binds.get(key)
        if found is None:
            found = tuple(_readable_binds(key[0], covered))
            with self._lock:
                if len(self._binds) >= self._LIMIT:
                    self._binds.clear()
                self._binds[key] = found
        return found


def _readable_binds(paths: Iterable[Path | str], covered: Sequence[str]) -> list[_Bind]:
    """Read-only binds for `paths` not already inside the view, outermost first."""
    wanted: dict[str, str] = {}
    state = pox_state_dirs()
    for raw in paths:
        given = os.path.normpath(os.path.abspath(raw))
        real = os.path.realpath(given)
        if _never_readable(real, state) or _never_readable(given, state):
            continue
        for dest in {given, real}:
            if dest == "/" or any(is_within(dest, t) for t in SYSTEM_TREES):
                continue
            if any(is_within(dest, c) for c in covered):
                continue
            wanted[dest] = real
    if len(wanted) > _MAX_READABLE_BINDS:
        wanted = _by_directory(wanted)
    out: list[_Bind] = []
    for dest in sorted(wanted, key=lambda p: (p.count("/"), p)):
        if any(is_within(dest, b.dest) for b in out):
            continue
        out.append(_Bind(wanted[dest], dest))
    return out


def _never_readable(path: str, state: Sequence[str]) -> bool:
    """A declared path the job still must not read: PoX's state, kernel and runtime trees,
    sockets (a bind would make them connectable)."""
    if ".pox" in path.split("/") or any(is_within(path, d) for d in state):
        return True
    if any(is_within(path, d) for d in _KERNEL_TREES):
        return True
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _by_directory(wanted: Mapping[str, str]) -> dict[str, str]:
    """Expose files through their directory (fewer mounts), except in shared directories."""
    shared = {"/", PRIVATE_TMP, "/var/tmp", "/home", job_home()}
    out: dict[str, str] = {}
    for dest, real in wanted.items():
        parent = os.path.dirname(dest)
        if os.path.isdir(real) or parent in shared:
            out[dest] = real
        else:
            out[parent] = os.path.realpath(parent)
    return out


def _hidden(
    extra: Sequence[Path], exposed: Sequence[str], workdir: str, roots: Sequence[str]
) -> list[str]:
    """PoX's state inside the view: `.pox` of each exposed directory, PoX's config and data."""
    candidates = [os.path.join(workdir, ".pox"), *(str(p) for p in extra)]
    candidates += [os.path.join(e, ".pox") for e in exposed if e != workdir]
    for root in roots:  # an output's directory may hold other runs' working directories
        with os.scandir(root) as entries:
            candidates += [os.path.join(e.path, ".pox") for e in entries if e.is_dir()]
    candidates += pox_state_dirs()
    out: list[str] = []
    for path in candidates:
        path = os.path.normpath(path)
        if path in out or not os.path.isdir(path):
            continue
        roots = [*exposed, *SYSTEM_TREES]
        if any(is_within(path, root) for root in roots):
            out.append(path)
    return out


def pox_state_dirs() -> list[str]:
    """PoX's configuration and data directories (profiles, keystores, deployments)."""
    home = os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return [os.path.join(config, "pox"), os.path.join(data, "pox")]


def is_within(path: str, root: str) -> bool:
    """`path` is `root` or lies below it (both normalized absolute paths)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def interpreter_paths() -> tuple[Path, ...]:
    """Where this Python and its packages live: a job that re-invokes Snakemake needs them."""
    return _interpreter_paths(sys.prefix, sys.base_prefix, sys.executable)


@lru_cache(maxsize=4)
def _interpreter_paths(prefix: str, base_prefix: str, executable: str) -> tuple[Path, ...]:
    # Resolving the executable's links costs a system call per path component: once per run,
    # not once per job.
    return (Path(prefix), Path(base_prefix), Path(executable).resolve().parent)


def path_prefixes(search_path: str) -> tuple[Path, ...]:
    """The software prefixes of a `PATH` (`~/.cargo` for `~/.cargo/bin`): tools and their
    libraries stay usable although the home directory is private."""
    return _path_prefixes(search_path, os.path.normpath(os.path.expanduser("~")))


@lru_cache(maxsize=8)
def _path_prefixes(search_path: str, home: str) -> tuple[Path, ...]:
    out: list[Path] = []
    for entry in search_path.split(os.pathsep):
        if not os.path.isabs(entry):
            continue
        entry = os.path.normpath(entry)
        bin_like = os.path.basename(entry) in ("bin", "sbin", "condabin")
        prefix = os.path.dirname(entry) if bin_like else entry
        if prefix in ("/", home, PRIVATE_TMP, "/var/tmp", "/home", "/run") or not prefix:
            continue
        if os.path.isdir(prefix):
            out.append(Path(prefix))
    return tuple(out)
