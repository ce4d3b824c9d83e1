"""Confidential datasets under `--pox-backend docker`, with the real Docker engine, a real broker
and a dataset registered on a real anvil: the job in the granted image attests (presenting the
image's measurement), gets the key, decrypts into the container's private tmpfs, computes and
seals the result; its statement records the dataset's address, checksum and CID and the guest
client it ran; the plaintext is nowhere on the host's disk under the working directory or the
job stages. The same workflow in another image is refused by the dataset's policy and gets
nothing.

The broker listens on the Docker bridge's gateway: a job container with `pox_network=1` is on
the bridge, where the host's loopback is not reachable.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_process import BrokerProcess
from cohort_run import files_with, write_requester_config
from docker_images import images
from poxrun import only_bundle, read_records, run_snakemake

from pox_executor.chain.client import ChainClient
from pox_executor.datasets.grant import grant_dataset
from pox_executor.datasets.guest import GUEST_CODE_NAME
from pox_executor.datasets.owner import encrypt_dataset, push_dataset
from pox_executor.datasets.registry import register_dataset
from pox_executor.enclave import engine
from pox_executor.enclave.docker import MEMORY_MOUNT, DockerRuntime
from pox_executor.enclave.runtime import JobSpec

pytestmark = pytest.mark.integration

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "confidential-cohort"


@pytest.fixture(scope="module")
def measurements() -> dict[str, str]:
    built = images("python", "bio")
    return {name: info.measurement for name, info in built.items()}


def _bridge_gateway(network: dict[str, Any]) -> str:
    """The bridge's gateway address. The engine leaves `Gateway` out of the IPAM config when it
    found its bridge interface already configured (a restarted dockerd); the gateway is then
    the bridge's first address, as the engine assigns it."""
    config = network["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="module")
def bridge_broker(
    measurements: dict[str, str], chain: ChainClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    """A broker on the bridge gateway (reachable from job containers and from the host)."""
    gateway = _bridge_gateway(engine.client().inspect_network("bridge"))
    process = BrokerProcess(
        tmp_path_factory.mktemp("bridge-broker") / "state",
        extra_args=[
            "--host",
            gateway,
            "--chain-rpc",
            chain.rpc_url,
            "--dataset-registry",
            chain.addresses["DatasetRegistry"],
        ],
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def dataset(
    chain: ChainClient,
    bridge_broker: BrokerProcess,
    measurements: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The cohort, encrypted, pushed, registered and granted to the `pox/python` image only."""
    owner = tmp_path_factory.mktemp("owner")
    shutil.copy(WORKFLOW / "owner" / "cohort.vcf", owner)
    done = encrypt_dataset(owner / "cohort.vcf", name=f"cohort-{owner.name}.vcf")
    push_dataset(done.manifest_path, store=None)
    register_dataset(done.manifest_path, chain)
    grant_dataset(
        done.manifest_path,
        bridge_broker.url,
        key_path=done.key_path,
        owner_key=chain.accounts.key("requester"),
        admin_token=bridge_broker.token,
        measurements=[f"sim-report={measurements['python']}"],
        allow_simulated=True,
    )
    return done.ciphertext


def _prepare(tmp: Path, ciphertext: Path, broker: BrokerProcess) -> Path:
    run = tmp / "run"
    (run / "data").mkdir(parents=True)
    (run / "keys").mkdir()
    shutil.copy(WORKFLOW / "Snakefile", run)
    shutil.copytree(WORKFLOW / "scripts", run / "scripts")
    shutil.copy(ciphertext, run / "data" / "cohort.vcf.pox-enc")
    shutil.copy(ciphertext.with_name(ciphertext.name + ".json"), run / "data")
    (run / "data" / (ciphertext.name + ".json")).rename(run / "data" / "cohort.vcf.pox-enc.json")
    write_requester_config(run, broker.url)
    return run


def test_granted_image_decrypts_in_container_memory(
    dataset: Path, bridge_broker: BrokerProcess, tmp_path: Path
) -> None:
    """One job through DockerRuntime: where the plaintext is, and that it is gone after."""
    run = _prepare(tmp_path, dataset, bridge_broker)
    runtime = DockerRuntime(default_image="pox/python")
    runtime.prepare(run)
    inner = (
        'echo "path=$POX_DATASET"; echo "fs=$(stat -f -c %T "$POX_PRIVATE_DIR")"; '
        'echo "mode=$(stat -c %a "$(dirname "$POX_PRIVATE_DIR")")"; '
        'grep -c "^#CHROM.*P001" "$POX_DATASET" | sed "s/^/header=/"'
    )
    spec = JobSpec(
        invocation_id="docker-dataset-memory",
        command=f"pox dataset open --broker {bridge_broker.url} data/cohort.vcf.pox-enc -- "
        f"sh -c {shlex.quote(inner)}",
        workdir=run,
        outputs=(),
        log_path=tmp_path / "memory.log",  # the command names what it greps for
        network=True,
    )
    outcome = runtime.run(spec, threading.Event())
    log = spec.log_path.read_text()
    assert outcome.exit_code == 0, log
    lines = dict(line.split("=", 1) for line in log.splitlines() if "=" in line[:10])
    assert lines["path"].startswith(MEMORY_MOUNT + "/pox-dataset-"), log
    assert lines["fs"] == "tmpfs" and lines["mode"] == "700", log
    assert lines["header"] == "1"  # the job read the plaintext
    assert outcome.extra_code and outcome.extra_code[0][0] == GUEST_CODE_NAME
    assert files_with(run, b"P001") == []


def test_docker_workflow_seals_and_records_the_dataset(
    dataset: Path, bridge_broker: BrokerProcess, measurements: dict[str, str], tmp_path: Path
) -> None:
    run = _prepare(tmp_path, dataset, bridge_broker)
    run_snakemake(run, "--pox-backend", "docker", "--pox-default-image", "pox/python")
    assert (run / "results" / "allele_freqs.tsv.pox-enc").is_file()
    (job,) = [
        r
        for r in read_records(only_bundle(run))
        if r.statement["predicate"]["buildDefinition"]["externalParameters"].get("rule")
        == "allele_frequencies"
    ]
    deps = job.statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    facts = next(d for d in deps if d.get("name") == "data/cohort.vcf.pox-enc")["annotations"][
        "pox.dataset"
    ]
    manifest = json.loads((run / "data" / "cohort.vcf.pox-enc.json").read_text())
    assert facts["address"] == manifest["dataset"]["address"]
    assert facts["checksum"] == manifest["checksum"]
    assert facts["cid"] == manifest["cid"]["cid"]
    client = next(d for d in deps if d.get("name") == GUEST_CODE_NAME)
    assert client["annotations"]["pox.kind"] == "code" and len(client["digest"]["sha256"]) == 64
    sealed = next(s for s in job.statement["subject"] if s["name"].endswith(".pox-enc"))
    assert sealed["annotations"]["pox.dataset"]["sealed_for"]["alg"] == "RSA-OAEP-256"
    builder = job.statement["predicate"]["runDetails"]["builder"]["id"]
    assert builder == f"https://pox.dev/backends/docker@sha256:{measurements['python']}"
    # sample ids are in the plaintext header only: nowhere under the working directory, whose
    # .pox/stage holds every job's stage (upper layer) and the guest client
    assert (run / ".pox" / "stage").is_dir()
    assert files_with(run, b"P001") == []


def test_image_not_in_the_policy_is_refused_and_gets_nothing(
    dataset: Path, bridge_broker: BrokerProcess, measurements: dict[str, str], tmp_path: Path
) -> None:
    run = _prepare(tmp_path, dataset, bridge_broker)
    result = run_snakemake(
        run, "--pox-backend", "docker", "--pox-default-image", "pox/bio", expect_ok=False
    )
    assert result.returncode != 0
    logs = "".join(p.read_text() for p in (only_bundle(run) / "logs").glob("*.log"))
    assert "the key broker refused the key of dataset" in logs, logs
    assert f"(measurement {measurements['bio']})" in logs  # the image's, as its evidence says
    assert not (run / "results" / "allele_freqs.tsv.pox-enc").exists()
    assert files_with(run, b"P001") == []
