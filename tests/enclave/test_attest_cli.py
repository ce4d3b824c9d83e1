"""`pox attest verify` on real evidence: exit codes 0 (accepted), 1 (rejected), 2 (usage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from attest_vectors import (
    DCAP_REPORT_DATA_OFFSET,
    SGX_MRENCLAVE,
    flip_bit,
    sgx_evidence,
    snp_report_bytes,
    tdx_evidence,
    vector,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.cli import main
from pox_executor.enclave.evidence import produce_sim_evidence

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = REPO / "docs" / "examples" / "attestation-policy.json"
IN_WINDOW = "2025-07-01T00:00:00Z"
AFTER = "2025-08-01T00:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["attest", "verify", *[str(a) for a in argv]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sgx_args() -> list[str]:
    return [
        str(vector("sgx-dcap/quote.bin")),
        "--type",
        "sgx-dcap-quote",
        "--collateral",
        str(vector("sgx-dcap/collateral.json")),
    ]


def snp_hex_args(tmp_path: Path, blob: bytes | None = None) -> list[str]:
    path = tmp_path / "report.hex"
    path.write_text((blob or snp_report_bytes()).hex() + "\n")
    return [
        str(path),
        "--type",
        "snp-report",
        "--vcek",
        str(vector("sev-snp/vcek.der")),
        "--cert-chain",
        str(vector("sev-snp/cert_chain.pem")),
    ]


def tdx_envelope(tmp_path: Path, value: bytes | None = None) -> Path:
    evidence = tdx_evidence()
    document = evidence.to_json()
    if value is not None:
        import base64

        document["value"] = base64.b64encode(value).decode()
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(document))
    return path


# --- accepted ---------------------------------------------------------------------------------


def test_native_sgx_quote_prints_tcb_and_advisories(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *sgx_args(), "--at", IN_WINDOW)
    assert code == 0, out
    assert f"mrenclave {SGX_MRENCLAVE}" in out
    assert "tcb status:   ConfigurationAndSWHardeningNeeded" in out
    assert "advisories:   INTEL-SA-00289, INTEL-SA-00615" in out
    assert "debug:        no" in out
    assert "report data:  48656c6c6f2c20776f726c6421" in out
    assert "result:       ACCEPTED" in out


def test_native_snp_hex_report_with_example_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, *snp_hex_args(tmp_path), "--policy", EXAMPLE_POLICY, "--at", IN_WINDOW
    )
    assert code == 0, out
    assert "reported tcb: bootloader=3 tee=0 snp=8 microcode=115" in out


def test_tdx_envelope_with_policy_and_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tdx_envelope(tmp_path)
    code, out, _ = run(capsys, path, "--policy", EXAMPLE_POLICY, "--at", IN_WINDOW, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] and data["authentic"] and data["tcb_status"] == "UpToDate"
    assert data["type"] == "tdx-quote" and data["debug"] is False


def test_unix_seconds_and_matching_report_data(capsys: pytest.CaptureFixture[str]) -> None:
    offset = DCAP_REPORT_DATA_OFFSET["sgx-dcap-quote"]
    report_data = sgx_evidence().value[offset : offset + 64].hex()
    code, out, _ = run(capsys, *sgx_args(), "--at", "1751328000", "--report-data", report_data)
    assert code == 0, out


def test_sim_report_only_with_allow_simulated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evidence = produce_sim_evidence(
        Ed25519PrivateKey.generate(), measurement="m", report_data=bytes(64), issued_at="t"
    )
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(evidence.to_json()))
    code, out, _ = run(capsys, path)
    assert code == 1 and "FAILED        simulated:" in out
    code, out, _ = run(capsys, path, "--allow-simulated")
    assert code == 0
    assert "(SIMULATED)" in out and "proves nothing about confidentiality" in out


# --- rejected (exit 1) -----------------------------------------------------------------------


def test_after_collateral_expired(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *sgx_args(), "--at", AFTER)
    assert code == 1
    assert "FAILED        freshness: collateral expired: QE identity nextUpdate" in out
    assert "result:       REJECTED" in out


def test_flipped_bit_in_envelope(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    value = flip_bit(tdx_evidence().value, DCAP_REPORT_DATA_OFFSET["tdx-quote"])
    code, out, _ = run(capsys, tdx_envelope(tmp_path, value), "--at", IN_WINDOW)
    assert code == 1
    assert "authentic:    NO" in out
    assert "ISV enclave report signature is invalid" in out


def test_flipped_bit_in_snp_hex(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blob = flip_bit(snp_report_bytes(), 0x95)
    code, out, _ = run(capsys, *snp_hex_args(tmp_path, blob))
    assert code == 1 and "does not verify with the VCEK" in out


def test_wrong_measurement_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"measurements": {"sgx-dcap-quote": [{"mrsigner": "ab" * 32}]}}))
    code, out, _ = run(capsys, *sgx_args(), "--at", IN_WINDOW, "--policy", policy)
    assert code == 1
    assert "mrsigner is 815f42f1" in out and f"expected {'ab' * 32}" in out


def test_report_data_not_binding(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *sgx_args(), "--at", IN_WINDOW, "--report-data", "00" * 64)
    assert code == 1 and "does not bind the presented key" in out


def test_garbage_blob_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x07" * 600)
    code, _, err = run(
        capsys, path, "--type", "tdx-quote", "--collateral", vector("tdx-dcap/collateral.json")
    )
    assert code == 1 and "cannot parse the quote" in err


# --- usage errors (exit 2) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--at", "yesterday"], "--at 'yesterday': expected an RFC 3339 time"),
        (["--report-data", "abcd"], "--report-data: expected 128 hex characters"),
        (["--policy", "/nonexistent/policy.json"], "cannot read policy file"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    code, _, err = run(capsys, *sgx_args(), *extra)
    assert code == 2 and message in err


def test_native_blob_needs_type_and_material(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, vector("sgx-dcap/quote.bin"))
    assert code == 2 and "--type" in err
    code, _, err = run(capsys, vector("sgx-dcap/quote.bin"), "--type", "sgx-dcap-quote")
    assert code == 2 and "--collateral FILE" in err
    code, _, err = run(capsys, vector("sev-snp/report.hex"), "--type", "snp-report")
    assert code == 2 and "--vcek FILE --cert-chain FILE" in err


def test_attest_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attest"]) == 2
    assert "verify" in capsys.readouterr().out


def test_envelope_type_mismatch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tdx_envelope(tmp_path), "--type", "snp-report")
    assert code == 2 and "holds tdx-quote evidence" in err


def test_malformed_policy_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "p.json"
    policy.write_text('{"allow_debug": "yes"}')
    code, _, err = run(capsys, *sgx_args(), "--policy", policy)
    assert code == 2 and "field 'allow_debug': expected true or false" in err


def test_argparse_usage_and_subprocess_entry_point() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pox_executor.cli",
            "attest",
            "verify",
            *sgx_args(),
            "--at",
            IN_WINDOW,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "ACCEPTED" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "attest", "verify", "x", "--type", "nitro"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
