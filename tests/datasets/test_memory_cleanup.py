"""Without isolation (`--pox-no-isolation`) a job's dataset plaintext goes to /dev/shm (said on
stderr): the runtime gives each job its own 0700 directory there and removes it after the job,
whether the job failed, was terminated or was killed outright; `pox dataset open` itself removes
the plaintext when it is terminated. Real broker, real anvil, real processes."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from broker_process import BrokerProcess

from pox_executor.chain.client import ChainClient
from pox_executor.datasets.grant import grant_dataset
from pox_executor.datasets.owner import encrypt_dataset, push_dataset
from pox_executor.datasets.registry import register_dataset
from pox_executor.enclave.runtime import JobSpec
from pox_executor.enclave.sim import SimRuntime

pytestmark = pytest.mark.integration

GENOTYPES = b"#CHROM\tPOS\tID\tREF\tALT\tP901\n1\t100\trs1\tA\tG\t0/1\n"
POX = f"{shlex.quote(sys.executable)} -m pox_executor.cli"


@pytest.fixture(scope="module")
def unisolated(
    chain: ChainClient, chain_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SimRuntime, Path]:
    """An unisolated sim runtime and a dataset granted to its measurement."""
    workdir = tmp_path_factory.mktemp("wd")
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    source = tmp_path_factory.mktemp("owner") / "cohort.vcf"
    source.write_bytes(GENOTYPES)
    done = encrypt_dataset(source, name=f"cohort-{workdir.name}.vcf")
    push_dataset(done.manifest_path, store=None)
    register_dataset(done.manifest_path, chain)
    grant_dataset(
        done.manifest_path,
        chain_broker.url,
        key_path=done.key_path,
        owner_key=chain.accounts.key("requester"),
        admin_token=chain_broker.token,
        measurements=[f"sim-report={runtime.measurement()}"],
        allow_simulated=True,
    )
    (workdir / "cohort.vcf.pox-enc").write_bytes(done.ciphertext.read_bytes())
    (workdir / "cohort.vcf.pox-enc.json").write_bytes(done.manifest_path.read_bytes())
    return runtime, workdir


def _run(runtime: SimRuntime, workdir: Path, broker: str, inner: str, name: str) -> int:
    command = (
        f"{POX} dataset open --broker {broker} cohort.vcf.pox-enc -- sh -c {shlex.quote(inner)}"
    )
    spec = JobSpec(
        invocation_id=f"cleanup-{name}-{time.time_ns()}",
        command=command,
        workdir=workdir,
        outputs=(),
        log_path=workdir / "logs" / f"{name}.log",
    )
    return runtime.run(spec, threading.Event()).exit_code


def _seen(workdir: Path, name: str) -> Path:
    """The plaintext path the job wrote down, after checking it read the plaintext there."""
    lines = (workdir / f"{name}.seen").read_text().splitlines()
    assert lines[1] == "P901", lines  # the job did read the plaintext
    return Path(lines[0])


def test_failing_unisolated_job_leaves_no_plaintext(
    unisolated: tuple[SimRuntime, Path], chain_broker: BrokerProcess
) -> None:
    runtime, workdir = unisolated
    inner = (
        'echo "$POX_DATASET" > failing.seen; head -1 "$POX_DATASET" | cut -f6 >> failing.seen; '
        "exit 3"
    )
    assert _run(runtime, workdir, chain_broker.url, inner, "failing") == 3
    plaintext = _seen(workdir, "failing")
    assert plaintext.is_relative_to("/dev/shm") and plaintext.parent.parent.name.startswith(
        "pox-job-cleanup-failing-"
    )
    assert not plaintext.parent.parent.exists()
    log = (workdir / "logs" / "failing.log").read_text()
    assert "which the host's root can read" in log  # the warning


def test_killed_unisolated_job_leaves_no_plaintext(
    unisolated: tuple[SimRuntime, Path], chain_broker: BrokerProcess
) -> None:
    """SIGKILL of `pox dataset open` (no clean-up of its own can run): the runtime removes it."""
    runtime, workdir = unisolated
    inner = (
        'echo "$POX_DATASET" > killed.seen; head -1 "$POX_DATASET" | cut -f6 >> killed.seen; '
        "kill -KILL $PPID"
    )
    assert _run(runtime, workdir, chain_broker.url, inner, "killed") != 0
    plaintext = _seen(workdir, "killed")
    assert plaintext.is_relative_to("/dev/shm")
    assert not plaintext.parent.parent.exists()


def test_terminated_open_removes_the_plaintext(
    unisolated: tuple[SimRuntime, Path], chain_broker: BrokerProcess, tmp_path: Path
) -> None:
    """SIGTERM to `pox dataset open` (a cancelled job): it stops the command, removes the
    plaintext itself, and exits 128 + 15."""
    runtime, workdir = unisolated
    seen = tmp_path / "term.seen"
    inner = f'echo "$POX_DATASET" > {seen}; exec sleep 60'
    env = {
        "POX_ENCLAVE_MEASUREMENT": runtime.measurement(),
        "POX_SHARED_MEMORY_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pox_executor.cli",
            "dataset",
            "open",
            "--broker",
            chain_broker.url,
            "cohort.vcf.pox-enc",
            "--",
            "sh",
            "-c",
            inner,
        ],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (seen.exists() and seen.read_text().strip()):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.05)
    plaintext = Path(seen.read_text().strip())
    assert plaintext.read_bytes() == GENOTYPES
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert not plaintext.exists() and not plaintext.parent.exists()
