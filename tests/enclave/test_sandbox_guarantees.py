"""The sim backend's sandbox keeps the host's secrets out of jobs (issue 8 section 3).

Every test runs a real job in real bubblewrap through `SimRuntime.run`, and most first show
from the host that what the job must not reach is really there (so the test can fail).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from poxrun import require_sandbox_tools

from pox_executor.enclave.runtime import JobSpec, OutputSpec, RunOutcome
from pox_executor.enclave.sim import SimRuntime

PROBE_CONNECT = """
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect("\\0" + path[1:] if path.startswith("@") else path)  # @name: abstract
        print("REACHED", path)
    except OSError as exc:
        print("blocked", path, exc.errno)
"""


def run_job(
    workdir: Path,
    command: str,
    *,
    outputs: tuple[str, ...] = ("out.txt",),
    network: bool = False,
    readable: tuple[str, ...] = (),
    passthrough: tuple[str, ...] = (),
    runtime: SimRuntime | None = None,
) -> tuple[RunOutcome, str]:
    """Run `command` as one job in `workdir`; returns the outcome and the job log."""
    require_sandbox_tools()
    workdir.mkdir(parents=True, exist_ok=True)
    if runtime is None:
        runtime = SimRuntime()
        runtime.prepare(workdir)
    assert runtime.isolated, runtime.describe_isolation()
    invocation = uuid.uuid4().hex
    log = workdir.parent / f"{workdir.name}-{invocation}.log"
    spec = JobSpec(
        invocation_id=invocation,
        command=command,
        workdir=workdir,
        outputs=tuple(OutputSpec(o) for o in outputs),
        log_path=log,
        network=network,
        readable=readable,
        env_passthrough=passthrough,
    )
    outcome = runtime.run(spec, threading.Event())
    return outcome, log.read_text(encoding="utf-8")


@contextmanager
def listening_unix_socket(path: Path | str) -> Iterator[Path | str]:
    """A listening socket at `path` (`@name`: in the abstract namespace)."""
    address = "\0" + str(path)[1:] if str(path).startswith("@") else str(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    server.listen(8)
    try:
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(address)  # the host reaches it: a job reaching it would be a leak
        probe.close()
        yield path
    finally:
        server.close()
        if isinstance(path, Path):
            path.unlink(missing_ok=True)


def writable_dirs_outside_the_view(tmp_path: Path) -> list[Path]:
    """Places a host socket might live: /tmp, $HOME, /var/tmp, /run, /srv (those writable)."""
    places = [tmp_path, Path.home(), Path("/var/tmp"), Path("/run"), Path("/srv")]
    return [p for p in places if p.is_dir() and os.access(p, os.W_OK)]


# --- 1. no host Unix socket ------------------------------------------------------------------


def test_no_host_unix_socket_is_reachable(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    name = f"pox-sock-{uuid.uuid4().hex[:8]}"
    paths: list[Path | str] = [d / name for d in writable_dirs_outside_the_view(tmp_path)]
    paths += [workdir / "in-workdir.sock", f"@{name}"]
    assert len(paths) >= 5, paths
    docker = [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)]
    if os.environ.get("CI") is None and not docker:
        pytest.fail("no docker.sock here: start the Docker engine (the test must try it)")
    servers = [listening_unix_socket(p) for p in paths]
    for server in servers:
        server.__enter__()
    try:
        targets = " ".join([*map(str, paths), *docker])
        # Declaring the sockets as inputs (a workflow may be hostile) does not expose them.
        outcome, log = run_job(
            workdir,
            f"python3 -c '{PROBE_CONNECT}' {targets} > out.txt",
            readable=(*(str(p) for p in paths if isinstance(p, Path)), *docker),
        )
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    report = (workdir / "out.txt").read_text()
    assert outcome.exit_code == 0, log
    assert "REACHED" not in report, report
    assert report.count("blocked") == len(paths) + len(docker), report


# --- 2. no PoX state --------------------------------------------------------------------------


def test_no_pox_configuration_keystore_or_run_state_is_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    workdir = tmp_path / "wd"
    other = tmp_path / "other-run"
    secrets = [
        home / ".config" / "pox" / "keys" / "signer.json",
        home / ".local" / "share" / "pox" / "deployments.json",
        workdir / ".pox" / "enclave-keys" / "0xMine.key",
        other / ".pox" / "enclave-keys" / "0xOther.key",
    ]
    for secret in secrets:
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("SECRET-MATERIAL\n")
    (other / "data.txt").write_text("input\n")
    # The other run's directory is even declared readable (a directory input), and so are the
    # secrets themselves (a workflow may be hostile): they stay hidden, the data is readable.
    cat = " ".join(f"cat {s} 2>/dev/null;" for s in secrets)
    outcome, log = run_job(
        workdir,
        f"{{ {cat} cat {other}/data.txt; ls -a ~; }} > out.txt",
        readable=(str(other), *map(str, secrets)),
    )
    report = (workdir / "out.txt").read_text()
    assert outcome.exit_code == 0, log
    assert "SECRET-MATERIAL" not in report, report
    assert "input" in report, "the declared readable directory is visible"
    # An output in the parent directory exposes the parent (through an overlay), so the other
    # run's directory beside this one: its .pox stays hidden all the same.
    outcome, log = run_job(
        workdir, f"{{ {cat} cat {other}/data.txt; }} > ../beside.txt", outputs=("../beside.txt",)
    )
    report = (tmp_path / "beside.txt").read_text()
    assert outcome.exit_code == 0, log
    assert "SECRET-MATERIAL" not in report and "input" in report, report
    assert all(s.read_text() == "SECRET-MATERIAL\n" for s in secrets)


def test_an_output_declared_inside_another_runs_pox_directory_is_refused(tmp_path: Path) -> None:
    # Its directory would otherwise become a writable overlay, showing the keys beside it.
    other_keys = tmp_path / "other-run" / ".pox" / "enclave-keys"
    other_keys.mkdir(parents=True)
    (other_keys / "0xOther.key").write_text("SECRET-MATERIAL\n")
    workdir = tmp_path / "wd"
    planted = other_keys / "planted.txt"
    outcome, log = run_job(workdir, f"cat {other_keys}/*.key > {planted}", outputs=(str(planted),))
    assert outcome.exit_code != 0
    assert "lies in PoX's own state" in log, log
    assert not planted.exists()


def test_an_output_below_a_symlink_the_job_made_cannot_pull_host_files(tmp_path: Path) -> None:
    # `ln -s <workdir>/.pox link` then declare `link/keep.key`: the commit must not follow it.
    workdir = tmp_path / "wd"
    key = workdir / ".pox" / "keep.key"
    key.parent.mkdir(parents=True)
    key.write_text("key\n")
    outcome, log = run_job(workdir, f"ln -s {workdir}/.pox link", outputs=("link/keep.key",))
    assert outcome.exit_code != 0
    assert "output 'link/keep.key' was not committed" in log, log
    assert key.read_text() == "key\n" and not os.path.lexists(workdir / "link")


# --- 3. environment ----------------------------------------------------------------------------


def test_the_job_environment_drops_secrets_but_keeps_ordinary_and_declared_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = {
        "POX_KEYSTORE_PASSPHRASE": "p1",
        "SNAKEMAKE_POX_CHAIN": "local",
        "LAB_DB_PASSWORD": "p2",
        "GITHUB_TOKEN": "p3",
        "SERVICE_SECRET": "p4",
        "SIGNING_KEY": "p5",
        "AWS_ACCESS_KEY_ID": "p6",
        "GOOGLE_APPLICATION_CREDENTIALS": "/p7",
        "AZURE_CLIENT_ID": "p8",
    }
    kept = {"ORDINARY_SETTING": "v1", "DECLARED_TOKEN": "v2"}
    for name, value in {**dropped, **kept}.items():
        monkeypatch.setenv(name, value)
    workdir = tmp_path / "wd"
    outcome, log = run_job(workdir, "env > out.txt", passthrough=("DECLARED_TOKEN",))
    assert outcome.exit_code == 0, log
    seen = dict(
        line.split("=", 1) for line in (workdir / "out.txt").read_text().splitlines() if "=" in line
    )
    assert not set(dropped) & set(seen), set(dropped) & set(seen)
    assert {k: seen.get(k) for k in kept} == kept
    assert set(kept) <= set(outcome.environment_names)
    assert not set(dropped) & set(outcome.environment_names)
    assert "PATH" in outcome.environment_names


# --- 4. symlink outputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "output", "is_directory"),
    [
        ("ln -s /etc/hostname out.txt", "out.txt", False),
        ("mkdir d && ln -s /etc d/host-etc", "d", True),
        ("ln -s .pox d", "d", True),
        ("ln -s ../../outside.txt out.txt", "out.txt", False),
        ("mkdir t && ln -s /etc t/host-etc && ln -s t d", "d", True),  # via the link's target
    ],
)
def test_a_symlink_output_leaving_the_workdir_fails_the_job_and_is_not_committed(
    tmp_path: Path, command: str, output: str, is_directory: bool
) -> None:
    require_sandbox_tools()
    workdir = tmp_path / "wd"
    (workdir / ".pox").mkdir(parents=True)
    runtime = SimRuntime()
    runtime.prepare(workdir)
    log = tmp_path / "job.log"
    spec = JobSpec(
        invocation_id="link",
        command=command,
        workdir=workdir,
        outputs=(OutputSpec(output, is_directory=is_directory),),
        log_path=log,
    )
    outcome = runtime.run(spec, threading.Event())
    assert outcome.exit_code != 0
    text = log.read_text()
    assert f"output {output!r} was not committed" in text and "outside the working" in text
    assert not os.path.lexists(workdir / output)


def test_a_symlink_output_inside_the_workdir_keeps_its_target(tmp_path: Path) -> None:
    # Snakemake's test_directory: `mkdir -p dir_to_link_to && ln -s dir_to_link_to symlinked_dir`.
    workdir = tmp_path / "wd"
    outcome, log = run_job(
        workdir,
        "mkdir -p dir_to_link_to && echo x > dir_to_link_to/f && ln -s dir_to_link_to linked",
        outputs=("linked",),
    )
    assert outcome.exit_code == 0, log
    assert os.readlink(workdir / "linked") == "dir_to_link_to"
    assert (workdir / "linked" / "f").read_text() == "x\n"


# --- 5. capabilities and network ----------------------------------------------------------------


def test_no_capabilities_and_no_network_unless_asked(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    connect = (
        "import socket\ns = socket.socket()\ns.settimeout(3)\n"
        f"try:\n    s.connect(('127.0.0.1', {port})); print('REACHED')\n"
        "except OSError as e:\n    print('blocked', e)"
    )
    command = f'grep CapEff /proc/self/status > out.txt; python3 -c "{connect}" >> out.txt'
    try:
        closed, log = run_job(tmp_path / "closed", command)
        opened, log2 = run_job(tmp_path / "open", command, network=True)
    finally:
        listener.close()
    assert closed.exit_code == 0 and opened.exit_code == 0, log + log2
    report = (tmp_path / "closed" / "out.txt").read_text()
    assert "CapEff:\t0000000000000000" in report, report
    assert "blocked" in report and "REACHED" not in report, report
    assert "REACHED" in (tmp_path / "open" / "out.txt").read_text(), "network=True lifts it"
