"""The verification pipeline against real SGX, TDX and SEV-SNP evidence, and its failure reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from attest_vectors import (
    AFTER_DCAP,
    AFTER_SNP,
    DCAP_REPORT_DATA_OFFSET,
    SGX_AT,
    SGX_ATTRIBUTES_OFFSET,
    SGX_MRENCLAVE,
    SGX_MRSIGNER,
    SNP_AT,
    SNP_MEASUREMENT,
    SNP_POLICY_OFFSET,
    SNP_REPORT_DATA_OFFSET,
    TDX_AT,
    TDX_MRTD,
    TDX_TD_ATTRIBUTES_OFFSET,
    flip_bit,
    sgx_evidence,
    snp_evidence,
    tdx_evidence,
    vector,
    with_value,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pox_executor.enclave.evidence import Evidence, produce_sim_evidence, report_data_for
from pox_executor.enclave.verifiers import (
    CHECK_DEBUG,
    CHECK_FRESHNESS,
    CHECK_MEASUREMENT,
    CHECK_REPORT_DATA,
    CHECK_SIGNATURE,
    CHECK_SIMULATED,
    CHECK_TCB,
    SIMULATED_WARNING,
    EvidenceReport,
    Policy,
    load_policy,
    parse_policy,
    verify_evidence,
)
from pox_executor.errors import EvidenceError

REPO = Path(__file__).resolve().parents[2]


def reasons(report: EvidenceReport, check: str) -> str:
    return " | ".join(f.reason for f in report.failed(check))


def only_failures(report: EvidenceReport) -> set[str]:
    return {f.check for f in report.failures}


# --- the genuine evidence verifies inside its window -------------------------------------------


def test_sgx_quote_verifies_with_intel_tcb_status_and_advisories() -> None:
    report = verify_evidence(sgx_evidence(), at=SGX_AT)
    assert report.ok, report.failures
    assert report.authentic and not report.debug and not report.simulated
    assert report.type == "sgx-dcap-quote"
    assert report.measurements == {"mrenclave": SGX_MRENCLAVE, "mrsigner": SGX_MRSIGNER}
    assert report.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert report.advisories == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert report.report_data.startswith(b"Hello, world!")
    assert report.verified_at == SGX_AT
    assert report.collateral_window == (
        datetime(2025, 6, 19, 10, 56, 11, tzinfo=UTC),
        datetime(2025, 7, 19, 10, 1, 18, tzinfo=UTC),
    )


def test_sgx_quote_accepted_by_a_policy_that_names_it() -> None:
    policy = parse_policy(
        {
            "measurements": {
                "sgx-dcap-quote": [{"mrenclave": SGX_MRENCLAVE, "mrsigner": SGX_MRSIGNER}]
            },
            "min_tcb_status": "ConfigurationAndSWHardeningNeeded",
            "allowed_advisories": ["INTEL-SA-00289", "INTEL-SA-00615"],
        }
    )
    report = verify_evidence(sgx_evidence(), policy=policy, at=SGX_AT)
    assert report.ok, report.failures


def test_tdx_quote_verifies_with_an_explicit_policy() -> None:
    evidence = tdx_evidence()
    policy = parse_policy(
        {
            "measurements": {"tdx-quote": [{"mrtd": TDX_MRTD}]},
            "min_tcb_status": "UpToDate",
            "allowed_advisories": [],
            "tdx": {"allow_dynamic_platform": True, "allow_cached_keys": True, "allow_smt": True},
        },
        source="tdx-policy",
    )
    report = verify_evidence(evidence, policy=policy, at=TDX_AT)
    assert report.ok, report.failures
    assert report.tcb_status == "UpToDate" and report.advisories == ()
    assert report.measurements["mrtd"] == TDX_MRTD
    assert set(report.measurements) == {"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}
    assert report.details["dynamic_platform"] == "True"


def test_tdx_platform_properties_refused_by_a_strict_policy() -> None:
    policy = parse_policy({"tdx": {"allow_dynamic_platform": False, "allow_cached_keys": False}})
    report = verify_evidence(tdx_evidence(), policy=policy, at=TDX_AT)
    assert only_failures(report) == {CHECK_TCB}
    assert "dynamic platform" in reasons(report, CHECK_TCB)
    assert "cached platform keys" in reasons(report, CHECK_TCB)


def test_snp_report_verifies_through_the_milan_chain() -> None:
    report = verify_evidence(snp_evidence(), at=SNP_AT)
    assert report.ok, report.failures
    assert report.authentic and not report.debug
    assert report.measurements["measurement"] == SNP_MEASUREMENT
    assert report.tcb_status is None
    assert report.details["product"] == "Milan"
    assert report.details["reported_tcb"] == {
        "bootloader": 3,
        "tee": 0,
        "snp": 8,
        "microcode": 115,
    }


# --- one flipped bit ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [sgx_evidence, tdx_evidence], ids=["sgx", "tdx"])
def test_dcap_flipped_bit_in_report_body_fails_signature(make: object) -> None:
    evidence = make()  # type: ignore[operator]
    offset = DCAP_REPORT_DATA_OFFSET[evidence.type] + 20
    report = verify_evidence(with_value(evidence, flip_bit(evidence.value, offset)), at=SGX_AT)
    assert not report.authentic
    assert only_failures(report) == {CHECK_SIGNATURE}
    assert "ISV enclave report signature is invalid" in reasons(report, CHECK_SIGNATURE)


def test_snp_flipped_bit_fails_report_signature() -> None:
    evidence = snp_evidence()
    tampered = with_value(evidence, flip_bit(evidence.value, SNP_REPORT_DATA_OFFSET + 3))
    report = verify_evidence(tampered, at=SNP_AT)
    assert not report.authentic
    assert only_failures(report) == {CHECK_SIGNATURE}
    assert "does not verify with the VCEK" in reasons(report, CHECK_SIGNATURE)


def test_snp_flipped_bit_in_reported_tcb_is_caught_by_vcek_and_signature() -> None:
    evidence = snp_evidence()
    report = verify_evidence(with_value(evidence, flip_bit(evidence.value, 0x187)), at=SNP_AT)
    text = reasons(report, CHECK_SIGNATURE)
    assert "VCEK was issued for TCB microcode=115" in text
    assert "does not verify with the VCEK" in text


def test_dcap_flipped_bit_in_collateral_signature_fails() -> None:
    evidence = sgx_evidence()
    collateral = dict(evidence.aux["collateral"])
    signature = bytearray.fromhex(collateral["tcb_info_signature"])
    signature[5] ^= 0x01
    collateral["tcb_info_signature"] = signature.hex()
    report = verify_evidence(
        Evidence(evidence.type, evidence.value, {"collateral": collateral}), at=SGX_AT
    )
    assert only_failures(report) == {CHECK_SIGNATURE}
    assert "Signature is invalid for tcb_info" in reasons(report, CHECK_SIGNATURE)


def test_snp_chain_to_a_foreign_root_is_refused(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Milan")])
    fake_ark = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2045, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA384())
    )
    evidence = snp_evidence()
    ask = evidence.aux["cert_chain"].split("-----END CERTIFICATE-----")[0]
    chain = ask + "-----END CERTIFICATE-----\n" + fake_ark.public_bytes(Encoding.PEM).decode()
    report = verify_evidence(
        Evidence(evidence.type, evidence.value, {**evidence.aux, "cert_chain": chain}), at=SNP_AT
    )
    assert "is not a pinned AMD root" in reasons(report, CHECK_SIGNATURE)
    assert not report.authentic


# --- a time after the collateral expired -------------------------------------------------------


def test_sgx_after_collateral_expired() -> None:
    report = verify_evidence(sgx_evidence(), at=AFTER_DCAP)
    assert only_failures(report) == {CHECK_FRESHNESS}
    assert reasons(report, CHECK_FRESHNESS) == (
        "collateral expired: QE identity nextUpdate 2025-07-19T10:01:18Z is not after the "
        "verification time 2025-08-01T00:00:00Z"
    )
    assert report.authentic  # genuine, only stale


def test_tdx_after_collateral_expired_names_the_pck_crl() -> None:
    report = verify_evidence(tdx_evidence(), at=AFTER_DCAP)
    assert only_failures(report) == {CHECK_FRESHNESS}
    assert "PCK CRL nextUpdate 2025-07-19T10:00:35Z" in reasons(report, CHECK_FRESHNESS)


def test_dcap_verified_today_fails_freshness_by_default() -> None:
    report = verify_evidence(sgx_evidence())  # at = now: years after the sample's collateral
    assert CHECK_FRESHNESS in only_failures(report)


def test_dcap_before_collateral_issued() -> None:
    report = verify_evidence(sgx_evidence(), at=datetime(2025, 6, 19, 10, 56, 10, tzinfo=UTC))
    assert "before the collateral is valid (TCB info issueDate 2025-06-19T10:56:11Z)" in reasons(
        report, CHECK_FRESHNESS
    )


def test_snp_after_vcek_expired() -> None:
    report = verify_evidence(snp_evidence(), at=AFTER_SNP)
    assert only_failures(report) == {CHECK_FRESHNESS}
    assert reasons(report, CHECK_FRESHNESS) == (
        "certificate 'SEV-VCEK' expired at 2030-04-03T19:23:43Z, before the verification time "
        "2031-01-01T00:00:00Z"
    )


# --- a wrong reference measurement -------------------------------------------------------------


def test_sgx_wrong_reference_measurement() -> None:
    policy = parse_policy(
        {"measurements": {"sgx-dcap-quote": [{"mrenclave": "00" * 32}]}}, source="p.json"
    )
    report = verify_evidence(sgx_evidence(), policy=policy, at=SGX_AT)
    assert only_failures(report) == {CHECK_MEASUREMENT}
    assert reasons(report, CHECK_MEASUREMENT) == (
        "measurement does not match the reference value of the policy p.json: "
        f"mrenclave is {SGX_MRENCLAVE}, expected {'00' * 32}"
    )


def test_tdx_wrong_rtmr() -> None:
    policy = parse_policy({"measurements": {"tdx-quote": [{"mrtd": TDX_MRTD, "rtmr3": "11" * 48}]}})
    report = verify_evidence(tdx_evidence(), policy=policy, at=TDX_AT)
    assert only_failures(report) == {CHECK_MEASUREMENT}
    assert f"rtmr3 is {'00' * 48}, expected {'11' * 48}" in reasons(report, CHECK_MEASUREMENT)


def test_snp_wrong_measurement_among_several() -> None:
    policy = parse_policy(
        {"measurements": {"snp-report": [{"measurement": "aa" * 48}, {"measurement": "bb" * 48}]}}
    )
    report = verify_evidence(snp_evidence(), policy=policy, at=SNP_AT)
    assert only_failures(report) == {CHECK_MEASUREMENT}
    assert "matches none of the 2 reference values" in reasons(report, CHECK_MEASUREMENT)
    assert SNP_MEASUREMENT in reasons(report, CHECK_MEASUREMENT)


def test_policy_without_entry_for_the_type_rejects() -> None:
    policy = parse_policy({"measurements": {"tdx-quote": [{"mrtd": TDX_MRTD}]}}, source="p")
    report = verify_evidence(sgx_evidence(), policy=policy, at=SGX_AT)
    assert reasons(report, CHECK_MEASUREMENT) == (
        "the policy p lists no reference measurements for sgx-dcap-quote"
    )


# --- report data that does not bind the presented key ------------------------------------------


def _binding(key: str) -> bytes:
    return report_data_for(
        nonce="n-1", public_keys=[key], task_id="task-1", image_digest="sha256:" + "0" * 64
    )


@pytest.mark.parametrize(
    ("make", "at"),
    [(sgx_evidence, SGX_AT), (tdx_evidence, TDX_AT), (snp_evidence, SNP_AT)],
    ids=["sgx", "tdx", "snp"],
)
def test_report_data_not_binding_the_presented_key(make: object, at: datetime) -> None:
    evidence = make()  # type: ignore[operator]
    report = verify_evidence(evidence, at=at, expected_report_data=_binding("ed25519:presented"))
    assert only_failures(report) == {CHECK_REPORT_DATA}
    assert "does not bind the presented key" in reasons(report, CHECK_REPORT_DATA)
    # ... while the report data the hardware did sign is accepted.
    same = verify_evidence(evidence, at=at, expected_report_data=report.report_data)
    assert same.ok, same.failures


def test_sim_report_binds_key_and_wrong_key_is_refused() -> None:
    bound = _binding("ed25519:enclave-key")
    evidence = produce_sim_evidence(
        Ed25519PrivateKey.generate(), measurement="img", report_data=bound, issued_at="2026-01-01Z"
    )
    good = verify_evidence(evidence, expected_report_data=bound, allow_simulated=True)
    assert good.ok, good.failures
    bad = verify_evidence(
        evidence, expected_report_data=_binding("ed25519:other"), allow_simulated=True
    )
    assert only_failures(bad) == {CHECK_REPORT_DATA}


def test_expected_report_data_must_be_64_bytes() -> None:
    with pytest.raises(EvidenceError, match="64 bytes"):
        verify_evidence(sgx_evidence(), at=SGX_AT, expected_report_data=b"short")


# --- debug enclaves ----------------------------------------------------------------------------


def test_sgx_debug_bit_parsed_and_signature_also_fails() -> None:
    evidence = sgx_evidence()
    tampered = with_value(evidence, flip_bit(evidence.value, SGX_ATTRIBUTES_OFFSET, 0x02))
    report = verify_evidence(tampered, at=SGX_AT)
    assert report.debug
    assert only_failures(report) == {CHECK_DEBUG, CHECK_SIGNATURE}
    assert "SGX ATTRIBUTES.DEBUG bit is set" in reasons(report, CHECK_DEBUG)


def test_tdx_debug_bit_parsed_and_signature_also_fails() -> None:
    evidence = tdx_evidence()
    tampered = with_value(evidence, flip_bit(evidence.value, TDX_TD_ATTRIBUTES_OFFSET, 0x01))
    report = verify_evidence(tampered, at=TDX_AT)
    assert report.debug and report.details["td_attributes"] == "0100001000000000"
    assert only_failures(report) == {CHECK_DEBUG, CHECK_SIGNATURE}
    assert "TD_ATTRIBUTES.DEBUG" in reasons(report, CHECK_DEBUG)


def test_snp_debug_policy_bit_parsed_and_signature_also_fails() -> None:
    evidence = snp_evidence()
    # bit 19 of the little-endian 64-bit guest policy = bit 3 of its third byte
    tampered = with_value(evidence, flip_bit(evidence.value, SNP_POLICY_OFFSET + 2, 0x08))
    report = verify_evidence(tampered, at=SNP_AT)
    assert report.debug
    assert only_failures(report) == {CHECK_DEBUG, CHECK_SIGNATURE}
    assert "policy DEBUG bit (19)" in reasons(report, CHECK_DEBUG)


def test_allow_debug_policy_accepts_the_debug_bit_but_not_the_forgery() -> None:
    evidence = sgx_evidence()
    tampered = with_value(evidence, flip_bit(evidence.value, SGX_ATTRIBUTES_OFFSET, 0x02))
    report = verify_evidence(tampered, policy=Policy(allow_debug=True), at=SGX_AT)
    assert only_failures(report) == {CHECK_SIGNATURE}


def test_sim_report_is_debug_and_rejected_unless_allowed() -> None:
    evidence = produce_sim_evidence(
        Ed25519PrivateKey.generate(),
        measurement="sha256:abc",
        report_data=bytes(64),
        issued_at="2026-11-21T00:00:00Z",
    )
    strict = verify_evidence(evidence)
    assert strict.debug and strict.simulated
    assert only_failures(strict) == {CHECK_SIMULATED}
    assert "proves nothing about confidentiality" in reasons(strict, CHECK_SIMULATED)
    assert SIMULATED_WARNING in strict.warnings
    dev = verify_evidence(evidence, allow_simulated=True)
    assert dev.ok and dev.simulated and dev.debug
    assert SIMULATED_WARNING in dev.warnings
    assert "proves nothing about confidentiality" in json.dumps(dev.to_json())


def test_sim_report_flipped_bit_is_refused() -> None:
    evidence = produce_sim_evidence(
        Ed25519PrivateKey.generate(), measurement="m", report_data=bytes(64), issued_at="t"
    )
    tampered = Evidence(evidence.type, evidence.value.replace(b'"m"', b'"n"'), evidence.aux)
    with pytest.raises(EvidenceError, match="signature does not verify"):
        verify_evidence(tampered, allow_simulated=True)


# --- TCB policy ----------------------------------------------------------------------------------


def test_sgx_tcb_below_minimum_and_unlisted_advisory() -> None:
    policy = parse_policy(
        {"min_tcb_status": "SWHardeningNeeded", "allowed_advisories": ["INTEL-SA-00289"]}
    )
    report = verify_evidence(sgx_evidence(), policy=policy, at=SGX_AT)
    assert only_failures(report) == {CHECK_TCB}
    text = reasons(report, CHECK_TCB)
    assert "TCB status ConfigurationAndSWHardeningNeeded is worse than the policy minimum " in text
    assert "advisories INTEL-SA-00615 are not in the policy's allowed_advisories" in text


def test_snp_min_tcb_and_smt() -> None:
    policy = parse_policy({"snp": {"min_tcb": {"microcode": 200, "snp": 8}, "allow_smt": False}})
    report = verify_evidence(snp_evidence(), policy=policy, at=SNP_AT)
    text = reasons(report, CHECK_TCB)
    assert "reported TCB microcode=115 is below the policy minimum 200" in text
    assert "snp=" not in text
    assert "allows SMT" in text


# --- parse errors and missing material ----------------------------------------------------------


def test_missing_collateral_is_an_error_with_a_hint() -> None:
    with pytest.raises(EvidenceError, match="no DCAP collateral") as info:
        verify_evidence(Evidence("sgx-dcap-quote", sgx_evidence().value), at=SGX_AT)
    assert info.value.hint and "--collateral" in info.value.hint


def test_wrong_type_for_the_quote() -> None:
    evidence = tdx_evidence()
    with pytest.raises(EvidenceError, match="is a TDX quote"):
        verify_evidence(Evidence("sgx-dcap-quote", evidence.value, evidence.aux), at=TDX_AT)


def test_garbage_quote_and_short_snp_report() -> None:
    with pytest.raises(EvidenceError, match="cannot parse the quote"):
        verify_evidence(Evidence("tdx-quote", b"\x00" * 100, tdx_evidence().aux), at=TDX_AT)
    with pytest.raises(EvidenceError, match="expected 1184 bytes"):
        verify_evidence(Evidence("snp-report", b"\x02" * 100, snp_evidence().aux), at=SNP_AT)


def test_report_json_round_trips_through_json() -> None:
    data = verify_evidence(sgx_evidence(), at=SGX_AT).to_json()
    text = json.dumps(data)
    assert json.loads(text)["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert data["collateral_window"]["not_after"] == "2025-07-19T10:01:18Z"


# --- policy files ---------------------------------------------------------------------------------


def test_documented_example_policy_accepts_the_three_real_vectors() -> None:
    policy = load_policy(REPO / "docs" / "examples" / "attestation-policy.json")
    assert policy.allow_debug is False
    for evidence, at in (
        (sgx_evidence(), SGX_AT),
        (tdx_evidence(), TDX_AT),
        (snp_evidence(), SNP_AT),
    ):
        report = verify_evidence(evidence, policy=policy, at=at)
        assert report.ok, (evidence.type, report.failures)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "field '(top level)': expected an object, got []"),
        ({"allow_debug": "no"}, "field 'allow_debug': expected true or false, got \"no\""),
        ({"min_tcb_status": "Fine"}, "field 'min_tcb_status': expected one of UpToDate,"),
        ({"allowed_advisories": "INTEL-SA-1"}, "field 'allowed_advisories': expected a list"),
        (
            {"measurements": {"sgx-dcap-quote": [{"mrenclave": "abc"}]}},
            (
                "field 'measurements.sgx-dcap-quote[0].mrenclave': expected 64 hex characters "
                '(32 bytes), got "abc"'
            ),
        ),
        (
            {"measurements": {"tdx-quote": [{"mrenclave": "00" * 32}]}},
            ("field 'measurements.tdx-quote[0].mrenclave': not a measurement of tdx-quote"),
        ),
        ({"measurements": {"nitro": []}}, "field 'measurements.nitro': unknown evidence type"),
        ({"snp": {"min_tcb": {"microcode": 300}}}, "field 'snp.min_tcb.microcode': expected an"),
        ({"tdx": {"allow_smt": 1}}, "field 'tdx.allow_smt': expected true or false, got 1"),
        ({"debug": False}, "unknown field 'debug'"),
        ({"version": 2}, "field 'version': expected the number 1, got 2"),
    ],
)
def test_policy_errors_name_file_field_and_expectation(
    tmp_path: Path, document: object, message: str
) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    with pytest.raises(EvidenceError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_policy_file_not_json(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    with pytest.raises(EvidenceError, match=r"policy.json: not valid JSON"):
        load_policy(path)
    with pytest.raises(EvidenceError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.json")


def test_vectors_present() -> None:
    assert vector("intel-sgx-root-ca.der").stat().st_size > 0


def test_pinned_roots_are_self_signed_vendor_roots() -> None:
    from pox_executor.enclave.verifiers.dcap import intel_root_ca_der
    from pox_executor.enclave.verifiers.snp import pinned_arks

    arks = pinned_arks()
    assert set(arks) == {"Milan", "Genoa", "Turin"}
    for product, ark in arks.items():
        ark.verify_directly_issued_by(ark)
        assert ark.subject.rfc4514_string().startswith(f"CN=ARK-{product},")
    assert intel_root_ca_der() == vector("intel-sgx-root-ca.der").read_bytes()


def test_turin_tcb_layout() -> None:
    from pox_executor.enclave.verifiers import parse_snp_report

    blob = bytearray(snp_evidence().value)
    blob[0x180:0x188] = bytes([1, 2, 3, 4, 0, 0, 0, 5])
    turin = parse_snp_report(bytes(blob), product="Turin").reported_tcb
    assert turin == {"fmc": 1, "bootloader": 2, "tee": 3, "snp": 4, "microcode": 5}
    milan = parse_snp_report(bytes(blob)).reported_tcb
    assert milan == {"bootloader": 1, "tee": 2, "snp": 0, "microcode": 5}
