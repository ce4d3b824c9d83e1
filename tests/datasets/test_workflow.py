"""workflows/confidential-cohort under `--executor pox --pox-backend sim`, with a real broker and
a dataset registered on a real anvil: the granted enclave computes and seals the result, its
statement records the dataset's address, checksum and CID (no plaintext anywhere in the run
folder); the same workflow against a dataset granted to another enclave fails with a clear
message and produces nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from cohort_run import files_with, write_requester_config
from poxrun import only_bundle, read_records, run_snakemake

from pox_executor.chain.client import ChainClient
from pox_executor.datasets.grant import grant_dataset
from pox_executor.datasets.owner import encrypt_dataset, push_dataset
from pox_executor.datasets.registry import register_dataset
from pox_executor.enclave.sim import SimRuntime

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "confidential-cohort"


def _prepare(tmp: Path, chain: ChainClient, broker: BrokerProcess, *, grant_ours: bool) -> Path:
    run = tmp / "run"
    (run / "data").mkdir(parents=True)
    (run / "keys").mkdir()
    shutil.copy(WORKFLOW / "Snakefile", run)
    shutil.copytree(WORKFLOW / "scripts", run / "scripts")
    owner = tmp / "owner"
    owner.mkdir()
    shutil.copy(WORKFLOW / "owner" / "cohort.vcf", owner)
    done = encrypt_dataset(owner / "cohort.vcf", name=f"cohort-{tmp.name}.vcf")
    push_dataset(done.manifest_path, store=None)
    register_dataset(done.manifest_path, chain)
    runtime = SimRuntime()
    runtime.prepare(run)
    ours = runtime.measurement()
    grant_dataset(
        done.manifest_path,
        broker.url,
        key_path=done.key_path,
        owner_key=chain.accounts.key("requester"),
        admin_token=broker.token,
        measurements=[f"sim-report={ours if grant_ours else 'f' * 64}"],
        allow_simulated=True,
    )
    shutil.copy(done.ciphertext, run / "data" / "cohort.vcf.pox-enc")
    shutil.copy(done.manifest_path, run / "data" / "cohort.vcf.pox-enc.json")
    write_requester_config(run, broker.url)
    return run


@pytest.fixture(autouse=True)
def _pox_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # the job's shell runs `pox`: the one installed next to this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def test_granted_enclave_runs_and_its_statement_names_the_dataset(
    tmp_path: Path, chain: ChainClient, chain_broker: BrokerProcess
) -> None:
    run = _prepare(tmp_path, chain, chain_broker, grant_ours=True)
    run_snakemake(run, "--pox-backend", "sim")
    assert (run / "results" / "allele_freqs.tsv.pox-enc").is_file()
    records = read_records(only_bundle(run))
    job = next(
        r
        for r in records
        if r.statement["predicate"]["buildDefinition"]["externalParameters"].get("rule")
        == "allele_frequencies"
    )
    deps = job.statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    dataset = next(d for d in deps if d.get("name") == "data/cohort.vcf.pox-enc")
    facts = dataset["annotations"]["pox.dataset"]
    manifest = json.loads((run / "data" / "cohort.vcf.pox-enc.json").read_text())
    assert facts["address"] == manifest["dataset"]["address"]
    assert facts["checksum"] == manifest["checksum"] == "0x" + dataset["digest"]["sha256"]
    assert facts["cid"] == manifest["cid"]["cid"]
    sealed = next(s for s in job.statement["subject"] if s["name"].endswith(".pox-enc"))
    assert sealed["annotations"]["pox.dataset"]["sealed_for"]["alg"] == "RSA-OAEP-256"
    # the executor published the sealed result to the run's content store under that CID
    from pox_executor.storage.localstore import LocalStore
    from pox_executor.storage.multiformats import parse_cid

    stored = LocalStore(run / ".pox" / "store").cat(
        parse_cid(sealed["annotations"]["pox.dataset"]["cid"])
    )
    assert b"".join(stored) == (run / "results" / "allele_freqs.tsv.pox-enc").read_bytes()
    # the sample ids are in the plaintext header only: nowhere in the run folder
    assert files_with(run, b"P001") == []
    verify = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "verify", "--allow-simulated"],
        cwd=run,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"address {facts['address']}" in verify.stdout + verify.stderr


def test_enclave_not_granted_fails_clearly_and_gets_nothing(
    tmp_path: Path, chain: ChainClient, chain_broker: BrokerProcess
) -> None:
    run = _prepare(tmp_path, chain, chain_broker, grant_ours=False)
    result = run_snakemake(run, "--pox-backend", "sim", expect_ok=False)
    assert result.returncode != 0
    logs = "".join(p.read_text() for p in (only_bundle(run) / "logs").glob("*.log"))
    assert "the key broker refused the key of dataset" in logs, logs
    assert not (run / "results" / "allele_freqs.tsv.pox-enc").exists()
    assert files_with(run, b"P001") == []
