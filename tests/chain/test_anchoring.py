"""Runs anchored on a real anvil: each deals mode verifies on chain, tampering is caught on chain,
a node killed mid-run leaves the workflow complete and `pox anchor` finishes later, two workflows
share one node without nonce errors, anchoring twice is a no-op, a stranger anchoring the run
id first (with a huge tree size) does not stop settlement, and a log rolled back below its
latest anchor fails verification.

One devnet (its own data directory, so nothing touches the user's) serves the whole module and
is stopped at the end. Without anvil these tests skip locally and fail when CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chain_tools import require_tool
from eth_account import Account
from poxrun import only_bundle, require_sandbox_tools, snakemake_env
from web3 import Web3

from pox_executor.audit.chain_check import check_chain
from pox_executor.audit.findings import Report
from pox_executor.chain import localnet
from pox_executor.chain.artifacts import load_artifact
from pox_executor.chain.deploy import transact
from pox_executor.chain.devnet import find_anvil
from pox_executor.chain.ids import run_id_bytes
from pox_executor.provenance.bundle import RunBundle

SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(JOBS))
rule make:
    output: "out/{i}.txt"
    shell: "sleep SLEEP; echo {wildcards.i} > {output}"
"""


@pytest.fixture(scope="module")
def chain_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_tool(find_anvil() is not None, "anvil")
    data = tmp_path_factory.mktemp("pox-data")
    old = os.environ.get("POX_DATA_DIR")
    os.environ["POX_DATA_DIR"] = str(data)
    try:
        node = localnet.start()
        localnet.ensure_deployed(node)
        time.sleep(1.5)  # anvil dumps its state every second: the deployment is on disk
        yield {"POX_DATA_DIR": str(data)}
    finally:
        localnet.stop()
        if old is None:
            os.environ.pop("POX_DATA_DIR", None)
        else:
            os.environ["POX_DATA_DIR"] = old


def workflow(root: Path, name: str, jobs: int = 4, sleep: float = 0.0) -> Path:
    workdir = root / name
    workdir.mkdir()
    text = SNAKEFILE.replace("JOBS", str(jobs)).replace("SLEEP", str(sleep))
    (workdir / "Snakefile").write_text(text)
    return workdir


def snakemake(workdir: Path, *args: str, chain: str = "local") -> subprocess.Popen[str]:
    require_sandbox_tools()
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "2", *args],
        cwd=workdir,
        env=snakemake_env(workdir, chain=chain),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout_s: float = 180) -> str:
    out, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, out[-5000:]
    return out


def pox(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
    )


def verify_json(workdir: Path, *args: str) -> dict[str, object]:
    result = pox(workdir, "verify", "--allow-simulated", "--json", *args)
    report: dict[str, object] = json.loads(result.stdout)
    return report


def journal(workdir: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((only_bundle(workdir) / "chain.json").read_text())
    return doc


@pytest.mark.parametrize("deals", ["batched", "per-job", "none"])
def test_each_deals_mode_verifies_on_chain(
    chain_env: dict[str, str], tmp_path: Path, deals: str
) -> None:
    workdir = workflow(tmp_path, f"wf-{deals}", jobs=5)
    # every 2 records: intermediate checkpoints are anchored too
    out = finish(snakemake(workdir, "--pox-deals", deals, "--pox-anchor-every", "2"))
    assert "anchored on local" in out
    report = verify_json(workdir)
    facts = report["facts"]
    assert report["ok"], report
    assert isinstance(facts, dict)
    # the log: the session's signed opening, 6 jobs (5 and `all`), its signed closing
    assert facts["anchored_size"] == 8
    if deals != "none":
        assert facts["tasks_completed"] == 6
    doc = journal(workdir)
    assert all(a["status"] == "done" for a in doc["actions"])  # type: ignore[union-attr]
    anchors = doc["anchors"]
    assert isinstance(anchors, list) and anchors[-1]["size"] == 8
    kinds = {a["kind"] for a in doc["actions"]}  # type: ignore[union-attr]
    expected = {
        "batched": {"anchor", "match", "finalize_batch"},
        "per-job": {"anchor", "match", "initialize", "finalize"},
        "none": {"anchor"},
    }[deals]
    assert expected <= kinds
    show = pox(workdir, "show")
    assert show.returncode == 0 and "anchor size 8 in block" in show.stdout


def test_tampered_bundle_fails_on_chain_checks(chain_env: dict[str, str], tmp_path: Path) -> None:
    workdir = workflow(tmp_path, "wf-tamper", jobs=3)
    finish(snakemake(workdir))
    assert verify_json(workdir)["ok"]
    log = only_bundle(workdir) / "attestations.intoto.jsonl"
    lines = log.read_bytes().splitlines()
    envelope = json.loads(lines[1])
    sig = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    lines[1] = json.dumps(envelope, separators=(",", ":")).encode()
    log.write_bytes(b"\n".join(lines) + b"\n")
    report = verify_json(workdir)
    assert not report["ok"]
    checks = {f["check"] for f in report["findings"] if f["level"] == "error"}  # type: ignore[union-attr,index]
    assert {"anchor", "task"} <= checks, report["findings"]
    offline = verify_json(workdir, "--offline")
    offline_checks = {f["check"] for f in offline["findings"] if f["level"] == "error"}  # type: ignore[union-attr,index]
    assert not {"anchor", "task"} & offline_checks


def test_node_killed_mid_run_then_pox_anchor(chain_env: dict[str, str], tmp_path: Path) -> None:
    workdir = workflow(tmp_path, "wf-kill", jobs=6, sleep=0.4)
    process = snakemake(workdir, "--pox-chain-timeout", "3")
    runs = workdir / ".pox" / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = list(runs.glob("*/attestations.intoto.jsonl")) if runs.exists() else []
        if logs and logs[0].read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    node = json.loads((Path(chain_env["POX_DATA_DIR"]) / "devnet" / "node.json").read_text())
    os.kill(int(node["pid"]), signal.SIGKILL)
    out = finish(process)
    assert "anchoring is pending" in out
    assert verify_json(workdir, "--offline")["ok"]
    pending = [a for a in journal(workdir)["actions"] if a["status"] != "done"]  # type: ignore[union-attr]
    assert pending, "the journal keeps what could not be sent"
    localnet.start()  # restarts from the persisted state
    result = pox(workdir, "anchor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 pending" in result.stdout
    report = verify_json(workdir)
    assert report["ok"], report
    again = pox(workdir, "anchor")
    assert again.returncode == 0 and " 0 sent" in again.stdout, again.stdout


def test_two_workflows_concurrently_share_the_node(
    chain_env: dict[str, str], tmp_path: Path
) -> None:
    workdirs = [workflow(tmp_path, f"wf-{i}", jobs=6) for i in range(2)]
    processes = [snakemake(w, "--pox-deals", "per-job") for w in workdirs]
    outputs = [finish(p) for p in processes]
    for workdir, out in zip(workdirs, outputs, strict=True):
        assert "nonce" not in out.lower(), out[-3000:]
        assert "anchored on local" in out, out[-3000:]
        report = verify_json(workdir)
        assert report["ok"], report
        assert report["facts"]["tasks_completed"] == 7  # type: ignore[index]


def test_chain_none_then_pox_anchor(chain_env: dict[str, str], tmp_path: Path) -> None:
    workdir = workflow(tmp_path, "wf-none", jobs=2)
    finish(snakemake(workdir, chain="none"))
    assert not (only_bundle(workdir) / "chain.json").exists()
    noted = verify_json(workdir)
    assert noted["ok"]
    result = pox(workdir, "anchor", "--deals", "batched")
    assert result.returncode == 0, result.stdout + result.stderr
    report = verify_json(workdir)
    # opening, 2 jobs and `all`, closing
    assert report["ok"] and report["facts"]["anchored_size"] == 5  # type: ignore[index]


def _registry(chain_env: dict[str, str]) -> tuple[Web3, Any]:
    node = localnet.start()
    w3 = Web3(Web3.HTTPProvider(node.rpc_url))
    addresses = localnet.ensure_deployed(node)
    return w3, w3.eth.contract(
        address=Web3.to_checksum_address(addresses["WorkflowRunRegistry"]),
        abi=load_artifact("WorkflowRunRegistry").abi,
    )


def test_stranger_anchoring_ahead_does_not_stop_settlement(
    chain_env: dict[str, str], tmp_path: Path
) -> None:
    """Attack: someone anchors the run id first with a huge tree size (under the old registry
    settlement then found "a later checkpoint is anchored" and skipped the real anchor)."""
    workdir = workflow(tmp_path, "wf-squat", jobs=2)
    finish(snakemake(workdir, chain="none"))
    bundle = only_bundle(workdir)
    run_id = json.loads((bundle / "run.json").read_text())["run_id"]
    w3, registry = _registry(chain_env)
    stranger = localnet.dev_keys()["worker"]
    transact(
        w3,
        stranger,
        registry.functions.anchorRun(
            run_id_bytes(run_id), f"pox/run/{run_id}", 2**64 - 1, b"\x66" * 32, "evil", []
        ),
    )
    result = pox(workdir, "anchor", "--deals", "none")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 sent" in result.stdout, result.stdout  # the anchor was sent, not skipped
    report = verify_json(workdir)
    assert report["ok"], report
    assert report["facts"]["anchored_size"] == 5  # type: ignore[index]


def test_rollback_below_an_anchor_is_caught(chain_env: dict[str, str], tmp_path: Path) -> None:
    """The log truncated below its latest anchor (with a matching older checkpoint or not)."""
    workdir = workflow(tmp_path, "wf-rollback", jobs=3)
    finish(snakemake(workdir, "--pox-deals", "none"))
    bundle = RunBundle.load(only_bundle(workdir))
    # in process: the requester the signed log names decides whose anchors count
    requester = json.loads((bundle.path / "chain.json").read_text())["accounts"]["requester"]
    right = Report("run")
    check_chain(bundle, right, expected_requester=requester)
    assert right.ok and right.facts["anchored_size"] == 6, right.findings
    assert not any("taken from chain.json" in f.message for f in right.findings)
    stranger = Account.from_key(localnet.dev_keys()["worker"]).address
    wrong = Report("run")
    check_chain(bundle, wrong, expected_requester=stranger)
    assert any(
        f.check == "anchor" and "not the run's requester" in f.message for f in wrong.errors
    ), wrong.findings
    assert any("not anchored on chain by" in f.message for f in wrong.errors), wrong.findings
    fallback = Report("run")
    check_chain(bundle, fallback)
    assert fallback.ok and any("taken from chain.json" in f.message for f in fallback.findings)
    log = only_bundle(workdir) / "attestations.intoto.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    report = verify_json(workdir)
    assert not report["ok"]
    errors = [f["message"] for f in report["findings"] if f["check"] == "anchor"]  # type: ignore[union-attr,index]
    assert any("rollback below an anchor" in str(m) for m in errors), report["findings"]
