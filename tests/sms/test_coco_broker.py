"""The running broker's `/kbs/v0/attest` with evidence in the shapes unmodified CoCo guests send.

Real hardware evidence (tests/enclave/vectors) cannot carry this session's runtime-data hash in
its report data, so the broker must refuse it for exactly that reason once every earlier step
passed; the DCAP vectors' collateral expired in July 2025, so at today's date the broker also
says so (the step-by-step pass before the binding, at a time inside the collateral window, is
`tests/enclave/test_verifiers_coco.py`). The accepted path runs with the sim producer.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from broker_process import BrokerProcess
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kbs_steps import RawSession

from pox_executor.enclave.producers import SimProducer
from pox_executor.sms import admin
from pox_executor.sms.coco_evidence import snp_cert_entry, snp_report_to_coco

pytestmark = pytest.mark.integration

VECTORS = Path(__file__).resolve().parents[1] / "enclave" / "vectors"
FMSPC = {"sgx": "00A067110000", "tdx": "B0C06F000000"}


def pox_sms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "sms", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def coco_quote(tee: str) -> dict[str, Any]:
    """CoCo's sgx_dcap / tdx attester output: `{"quote": base64}`, tdx with `cc_eventlog`."""
    folder = "sgx-dcap" if tee == "sgx" else "tdx-dcap"
    quote = (VECTORS / folder / "quote.bin").read_bytes()
    encoded = base64.b64encode(quote).decode("ascii")
    # serde writes the TDX attester's Option<String> event log as null when there is none
    return {"cc_eventlog": None, "quote": encoded} if tee == "tdx" else {"quote": encoded}


def coco_snp_vector(*, full_chain: bool) -> dict[str, Any]:
    report = bytes.fromhex((VECTORS / "sev-snp" / "report.hex").read_text().strip())
    ask, ark = x509.load_pem_x509_certificates(
        (VECTORS / "sev-snp" / "cert_chain.pem").read_bytes()
    )
    chain = [snp_cert_entry("VCEK", (VECTORS / "sev-snp" / "vcek.der").read_bytes())]
    if full_chain:
        chain += [
            snp_cert_entry("ASK", ask.public_bytes(Encoding.DER)),
            snp_cert_entry("ARK", ark.public_bytes(Encoding.DER)),
        ]
    return {"attestation_report": snp_report_to_coco(report), "cert_chain": chain}


def attest_native(broker: BrokerProcess, tee: str, primary: Any) -> tuple[int, dict[str, Any]]:
    session = RawSession(broker.url, tee=tee)
    return session.attest(
        {
            "runtime-data": session.runtime_data(),
            "tee-evidence": {"primary_evidence": primary, "additional_evidence": ""},
        }
    )


@pytest.fixture
def broker(module_broker: BrokerProcess) -> BrokerProcess:
    return module_broker


def test_bare_quotes_verify_from_the_collateral_cache_filled_while_running(
    broker: BrokerProcess,
) -> None:
    """Empty cache: the missing PCCS entry is named. Filled (no restart): stale and unbound only."""
    for tee in ("sgx", "tdx"):
        status, body = attest_native(broker, tee, coco_quote(tee))
        assert status == 401 and body["status"] == 401
        assert f"TCB info for FMSPC {FMSPC[tee]}" in body["detail"]
        assert "collateral cache" in body["detail"]
    for folder in ("sgx-dcap", "tdx-dcap"):
        added = pox_sms(
            "collateral", "add", str(VECTORS / folder / "collateral.json"), "--state-dir",
            str(broker.state_dir),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "TCB info fmspc=" in added.stdout and "STALE" in added.stdout
    for tee in ("sgx", "tdx"):
        status, body = attest_native(broker, tee, coco_quote(tee))
        assert status == 401
        detail = body["detail"]
        assert "freshness: collateral expired" in detail and "pox sms collateral add" in detail
        assert "report-data" in detail  # the quote does not carry this session's binding
        assert "signature" not in detail  # genuine: the chain to the Intel root verified


@pytest.mark.parametrize("full_chain", [True, False])
def test_native_snp_evidence_fails_only_the_binding(
    broker: BrokerProcess, full_chain: bool
) -> None:
    status, body = attest_native(broker, "snp", coco_snp_vector(full_chain=full_chain))
    assert status == 401
    assert body["detail"].startswith("snp-report evidence rejected: report-data:")
    assert ";" not in body["detail"]  # one failure: signature, chain and freshness passed


def test_trustee_own_snp_evidence_fails_only_the_binding(broker: BrokerProcess) -> None:
    document = json.loads((VECTORS / "coco" / "trustee-snp-evidence.json").read_text())
    status, body = attest_native(broker, "snp", document)
    assert status == 401
    assert body["detail"].startswith("snp-report evidence rejected: report-data:")
    assert ";" not in body["detail"]


@pytest.mark.parametrize(
    ("tee", "primary", "message"),
    [
        ("snp", {"attestation_report": {"version": 3}}, "attestation_report.guest_svn"),
        ("snp", {"attestation_report": "x"}, "expected the SNP report object"),
        ("tdx", {"quote": "***"}, "primary_evidence.quote: not base64"),
        ("sgx", {"quote": 5}, "needs 'quote'"),
        ("sample", {"svn": "1", "report_data": "AA=="}, "signed by nothing"),
        ("sgx", [1, 2], "expected a JSON object"),
    ],
)
def test_malformed_native_evidence_is_a_401_naming_the_field(
    broker: BrokerProcess, tee: str, primary: Any, message: str
) -> None:
    status, body = attest_native(broker, tee, primary)
    assert status == 401 and message in body["detail"], body
    assert body["type"].endswith("/bad-evidence")


def test_accepted_path_with_the_sim_producer(broker: BrokerProcess) -> None:
    admin.put_policy(
        broker.url,
        broker.token,
        "coco-sim",
        {
            "resources": ["coco/key/*"],
            "allow_simulated": True,
            "attestation": {
                "allow_debug": True,
                "measurements": {"sim-report": [{"measurement": "coco-image"}]},
            },
        },
    )
    admin.put_secret(
        broker.url, "coco/key/v1", b"released to a simulated guest", token=broker.token
    )
    session = RawSession(broker.url, tee="sample")
    status, body = session.attest_with(SimProducer("coco-image"))
    assert status == 200, body
    assert session.resource("coco/key/v1") == (200, b"released to a simulated guest")


def test_collateral_cli_refuses_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"tcb_info": "{}"}')
    result = pox_sms("collateral", "add", str(bad), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1
    assert "bad.json: DCAP collateral field" in result.stderr and "Traceback" not in result.stderr
    missing = pox_sms("collateral", "add", str(tmp_path / "nope.json"), "--state-dir", "x")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    listed = pox_sms("collateral", "list", "--state-dir", str(tmp_path / "state"))
    assert listed.returncode == 0 and "empty" in listed.stdout
