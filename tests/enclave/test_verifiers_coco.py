"""CoCo guests' native evidence and the offline DCAP collateral cache, checked in-process.

The real vectors of `vectors/` (see its README) are put into the exact JSON shapes CoCo's
attesters send (guest-components `attester/src/{sgx_dcap,tdx,snp}`), and a second real SNP
evidence, Trustee's own end-to-end test input, is read as Trustee's verifier reads it.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attest_vectors import (
    AFTER_DCAP,
    SGX_AT,
    SGX_MRENCLAVE,
    SNP_MEASUREMENT,
    TDX_AT,
    TDX_MRTD,
    collateral,
    snp_report_bytes,
    vector,
)

from pox_executor.enclave.evidence import REPORT_DATA_SIZE, Evidence
from pox_executor.enclave.verifiers import CHECK_REPORT_DATA, CHECK_SIGNATURE, CollateralCache
from pox_executor.enclave.verifiers import verify_evidence as verify
from pox_executor.errors import EvidenceError
from pox_executor.sms.coco_evidence import (
    evidence_from_kbs,
    snp_cert_entry,
    snp_report_to_coco,
    verify_attestation,
)

TRUSTEE_SNP = "coco/trustee-snp-evidence.json"
TRUSTEE_SNP_MEASUREMENT = (
    "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4"
    "ae62a36d75c837974dd50b315506e73e"
)
OTHER_BINDING = b"\x11" * REPORT_DATA_SIZE


def filled_cache(root: Path) -> CollateralCache:
    cache = CollateralCache(root)
    cache.add(collateral("sgx-dcap"))
    cache.add(collateral("tdx-dcap"))
    return cache


def coco_dcap(kind: str) -> dict[str, Any]:
    """What the CoCo sgx_dcap / tdx attester sends: the quote in standard base64 (+ TDX log)."""
    quote = vector(f"{kind}/quote.bin").read_bytes()
    encoded = base64.b64encode(quote).decode("ascii")
    # serde writes the TDX attester's Option<String> event log as null when there is none
    return {"cc_eventlog": None, "quote": encoded} if kind == "tdx-dcap" else {"quote": encoded}


def coco_snp(*, chain: tuple[str, ...] = ("VCEK", "ASK", "ARK")) -> dict[str, Any]:
    """What the CoCo snp attester sends for the vector report (sev crate serde shapes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pems = x509.load_pem_x509_certificates(vector("sev-snp/cert_chain.pem").read_bytes())
    der = {
        "VCEK": vector("sev-snp/vcek.der").read_bytes(),
        "ASK": pems[0].public_bytes(Encoding.DER),
        "ARK": pems[1].public_bytes(Encoding.DER),
    }
    return {
        "attestation_report": snp_report_to_coco(snp_report_bytes()),
        "cert_chain": [snp_cert_entry(kind, der[kind]) for kind in chain],
    }


# --- the collateral cache ---------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "tee"), [("sgx-dcap", "sgx"), ("tdx-dcap", "tdx")])
def test_cache_gives_back_the_collateral_of_each_quote(tmp_path: Path, kind: str, tee: str) -> None:
    cache = filled_cache(tmp_path)
    resolved = cache.resolve(vector(f"{kind}/quote.bin").read_bytes())
    assert resolved == {k: v for k, v in collateral(kind).items() if isinstance(v, str)}
    layout = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")}
    assert layout == {
        "sgx/tcb/00A067110000.json",
        "tdx/tcb/B0C06F000000.json",
        "sgx/qe-identity.json",
        "tdx/qe-identity.json",
        "pckcrl/processor.json",
        "pckcrl/platform.json",
        "rootcacrl.json",
    }


@pytest.mark.parametrize(
    ("kind", "tee", "at", "field", "value"),
    [
        ("sgx-dcap", "sgx", SGX_AT, "mrenclave", SGX_MRENCLAVE),
        ("tdx-dcap", "tdx", TDX_AT, "mrtd", TDX_MRTD),
    ],
)
def test_coco_quote_without_collateral_passes_every_step_before_the_binding(
    tmp_path: Path, kind: str, tee: str, at: datetime, field: str, value: str
) -> None:
    """The broker's attest check on a CoCo guest's bare quote, collateral from the cache."""
    evidence = evidence_from_kbs(tee, coco_dcap(kind))
    assert "collateral" not in evidence.aux
    completed, report = verify_attestation(
        evidence, OTHER_BINDING, collateral_cache=filled_cache(tmp_path), at=at
    )
    assert report.authentic
    assert report.measurements[field] == value
    # signature, chain, collateral and freshness pass; only the session binding fails
    assert [f.check for f in report.failures] == [CHECK_REPORT_DATA]
    assert completed.aux["collateral_source"] == "cache"
    # and the quote's own report data is accepted: nothing but the binding stood in the way
    quote_data = report.report_data
    _, bound = verify_attestation(
        evidence, quote_data, collateral_cache=filled_cache(tmp_path / "again"), at=at
    )
    assert bound.ok, bound.failures


def test_stale_cached_collateral_is_refused_naming_the_document(tmp_path: Path) -> None:
    evidence = evidence_from_kbs("sgx", coco_dcap("sgx-dcap"))
    report = verify(
        evidence, at=AFTER_DCAP, collateral_cache=filled_cache(tmp_path), allow_simulated=False
    )
    reasons = [f.reason for f in report.failures]
    assert report.authentic  # genuine, checked at the start of its window
    assert len(reasons) == 1
    assert "collateral expired" in reasons[0] and "QE identity nextUpdate" in reasons[0]
    assert "pox sms collateral add" in reasons[0]


def test_missing_cache_entry_names_the_pccs_key(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.add(collateral("sgx-dcap"))
    with pytest.raises(EvidenceError) as caught:
        verify(evidence_from_kbs("tdx", coco_dcap("tdx-dcap")), collateral_cache=cache)
    assert "tdx TCB info for FMSPC B0C06F000000" in str(caught.value)
    assert "pox sms collateral add" in (caught.value.hint or "")


def test_older_collateral_does_not_replace_newer(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.add(collateral("sgx-dcap"))
    older = dict(collateral("sgx-dcap"))
    tcb = json.loads(older["tcb_info"])
    tcb["issueDate"] = "2025-01-01T00:00:00Z"
    older["tcb_info"] = json.dumps(tcb)
    written = {entry.key for entry in cache.add(older)}
    assert "sgx TCB info fmspc=00A067110000" not in written
    stored = json.loads((tmp_path / "sgx/tcb/00A067110000.json").read_text())
    assert stored["tcb_info"] == collateral("sgx-dcap")["tcb_info"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("pck_crl"), "'pck_crl' is missing"),
        (lambda c: c.update(pck_crl="zz"), "pck_crl: not a CRL"),
        (lambda c: c.update(tcb_info="{"), "bad.json.tcb_info: not a JSON document"),
    ],
)
def test_bad_collateral_is_refused_with_the_field(
    tmp_path: Path, mutate: Any, message: str
) -> None:
    bad = dict(collateral("sgx-dcap"))
    mutate(bad)
    with pytest.raises(EvidenceError) as caught:
        CollateralCache(tmp_path).add(bad, where="bad.json")
    assert message in str(caught.value) and "bad.json" in str(caught.value)
    assert not list(tmp_path.rglob("*.json"))


# --- native SNP evidence --------------------------------------------------------------------


def test_trustee_snp_evidence_verifies_byte_for_byte() -> None:
    """Trustee's own e2e evidence (sev crate serde, Genoa, VCEK only) rebuilt and verified."""
    document = json.loads(vector(TRUSTEE_SNP).read_text())
    evidence = evidence_from_kbs("snp", document)
    assert snp_report_to_coco(evidence.value) == {
        key: document["attestation_report"].get(key) for key in snp_report_to_coco(evidence.value)
    }
    report = verify(evidence, expected_report_data=OTHER_BINDING)
    assert report.authentic, report.failures
    assert report.details["product"] == "Genoa"
    assert evidence.aux["cert_chain_source"] == "shipped ASK, pinned ARK"
    assert report.measurements["measurement"] == TRUSTEE_SNP_MEASUREMENT
    assert [f.check for f in report.failures] == [CHECK_REPORT_DATA]


@pytest.mark.parametrize("chain", [("VCEK", "ASK", "ARK"), ("VCEK",)])
def test_native_snp_form_of_the_vector_verifies(chain: tuple[str, ...]) -> None:
    evidence = evidence_from_kbs("snp", coco_snp(chain=chain))
    assert evidence.value == snp_report_bytes()
    report = verify(evidence, expected_report_data=evidence.value[0x50:0x90])
    assert report.ok, report.failures
    assert report.measurements["measurement"] == SNP_MEASUREMENT


def test_native_snp_tampered_field_fails_the_signature() -> None:
    document = coco_snp()
    document["attestation_report"]["measurement"][0] ^= 1
    report = verify(evidence_from_kbs("snp", document))
    assert not report.authentic
    assert CHECK_SIGNATURE in [f.check for f in report.failures]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["attestation_report"].pop("chip_id"), "attestation_report.chip_id"),
        (lambda d: d["attestation_report"]["host_data"].pop(), "expected 32 bytes, got 31"),
        (lambda d: d["attestation_report"].update(policy=-1), "attestation_report.policy"),
        (lambda d: d["attestation_report"]["current_tcb"].update(snp=300), "current_tcb.snp"),
        (lambda d: d.update(cert_chain=[]), "no VCEK entry"),
        (lambda d: d["cert_chain"][0].update(data=[1, 2, 3]), "cert_chain[0].data"),
        (lambda d: d.pop("attestation_report"), "expected the SNP report object"),
    ],
)
def test_malformed_native_snp_evidence_names_the_field(mutate: Any, message: str) -> None:
    document = coco_snp()
    mutate(document)
    with pytest.raises(EvidenceError) as caught:
        evidence_from_kbs("snp", document)
    assert message in str(caught.value)


def test_trustee_sample_evidence_is_refused_as_unsigned() -> None:
    with pytest.raises(EvidenceError) as caught:
        evidence_from_kbs("sample", {"svn": "1", "report_data": "AAAA"})
    assert "signed by nothing" in str(caught.value)


def test_pox_envelope_is_still_accepted_for_every_tee() -> None:
    envelope = Evidence("sgx-dcap-quote", b"\x00", {}).to_json()
    assert evidence_from_kbs("sgx", envelope).type == "sgx-dcap-quote"


def test_verification_time_default_is_now() -> None:
    # the SNP vector's VCEK is valid until 2031: verified now, it is fresh
    report = verify(evidence_from_kbs("snp", coco_snp()))
    assert report.verified_at.year == datetime.now(UTC).year
    assert report.authentic
