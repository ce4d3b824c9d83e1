"""Evidence producers end to end against prepared directories holding the real hardware blobs.

The kernel (configfs-tsm) and Gramine side effects are simulated on a real temporary directory:
`mkdir` of a report entry creates its attribute files, writing `inblob` bumps `generation` and
makes `outblob` (and `auxblob`) readable, `rmdir` removes the entry with its attributes; writing
Gramine's `user_report_data` makes `quote` readable. The producers see only real files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from attest_vectors import (
    SGX_AT,
    SNP_AT,
    TDX_AT,
    collateral,
    sgx_evidence,
    snp_report_bytes,
    tdx_evidence,
    vector,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pox_executor.enclave.evidence import EvidenceProducer, report_data_for
from pox_executor.enclave.producers import (
    ConfigfsTsmProducer,
    FileOps,
    GramineProducer,
    SimProducer,
    build_snp_cert_table,
    collateral_from_file,
    detect_producer,
    detect_tees,
    parse_snp_cert_table,
)
from pox_executor.enclave.verifiers import CHECK_SIMULATED, verify_evidence
from pox_executor.enclave.verifiers.inputs import certificates_pem
from pox_executor.errors import EnclaveError, UsageError

TSM_ATTRIBUTES = ("inblob", "outblob", "auxblob", "provider", "generation", "privlevel")


class FakeConfigfsTsm(FileOps):
    """The kernel's configfs-tsm behaviour on a temporary directory."""

    def __init__(
        self, root: Path, provider: str, outblob: bytes, auxblob: bytes | None = None
    ) -> None:
        self.root = root
        self.provider = provider
        self.outblob = outblob
        self.auxblob = auxblob
        self.race = False
        self.entries_made: list[str] = []
        root.mkdir(parents=True, exist_ok=True)

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        if path.parent == self.root:
            self.entries_made.append(path.name)
            (path / "provider").write_text(self.provider + "\n")
            (path / "generation").write_text("0\n")
            (path / "inblob").write_bytes(b"")
            (path / "privlevel").write_text("0\n")

    def write_bytes(self, path: Path, data: bytes) -> None:
        if path.name == "inblob" and len(data) > 64:
            raise OSError(22, "Invalid argument")
        super().write_bytes(path, data)
        if path.parent.parent == self.root:
            generation = int((path.parent / "generation").read_text()) + 1
            (path.parent / "generation").write_text(f"{generation}\n")
            if path.name == "inblob":
                (path.parent / "outblob").write_bytes(self.outblob)
                if self.auxblob is not None:
                    (path.parent / "auxblob").write_bytes(self.auxblob)

    def read_bytes(self, path: Path) -> bytes:
        if path.name == "outblob" and not path.exists():
            raise OSError(5, "Input/output error")  # no report before inblob is written
        data = super().read_bytes(path)
        if path.name == "outblob" and self.race:
            generation = int((path.parent / "generation").read_text()) + 1
            (path.parent / "generation").write_text(f"{generation}\n")
        return data

    def rmdir(self, path: Path) -> None:
        if path.parent == self.root:
            for name in TSM_ATTRIBUTES:
                (path / name).unlink(missing_ok=True)
        super().rmdir(path)


class FakeGramine(FileOps):
    """Gramine's /dev/attestation on a temporary directory: a quote after user_report_data."""

    def __init__(self, root: Path, quote: bytes, attestation_type: str = "dcap") -> None:
        self.root = root
        self.quote = quote
        root.mkdir(parents=True, exist_ok=True)
        (root / "attestation_type").write_text(attestation_type)
        (root / "user_report_data").write_bytes(bytes(64))
        self.writes = 0

    def write_bytes(self, path: Path, data: bytes) -> None:
        if path.name == "user_report_data" and len(data) != 64:
            raise OSError(22, "Invalid argument")
        super().write_bytes(path, data)
        if path == self.root / "user_report_data":
            self.writes += 1
            (self.root / "quote").write_bytes(self.quote)

    def read_bytes(self, path: Path) -> bytes:
        if path == self.root / "quote" and not path.exists():
            raise OSError(13, "Permission denied")
        return super().read_bytes(path)


def der(relative: str) -> bytes:
    return vector(relative).read_bytes()


def snp_cert_table() -> bytes:
    ask, ark = x509.load_pem_x509_certificates(vector("sev-snp/cert_chain.pem").read_bytes())
    return build_snp_cert_table(
        {
            "vcek": der("sev-snp/vcek.der"),
            "ask": ask.public_bytes(Encoding.DER),
            "ark": ark.public_bytes(Encoding.DER),
        }
    )


# --- SGX through Gramine ---------------------------------------------------------------------


def test_gramine_producer_end_to_end(tmp_path: Path) -> None:
    quote = sgx_evidence().value
    fake = FakeGramine(tmp_path / "attestation", quote)
    producer: EvidenceProducer = GramineProducer(
        fake.root,
        collateral_source=collateral_from_file(vector("sgx-dcap/collateral.json")),
        fs=fake,
    )
    wanted = sgx_evidence_report_data()
    evidence = producer.produce(wanted)
    assert (fake.root / "user_report_data").read_bytes() == wanted
    assert evidence.type == "sgx-dcap-quote" and evidence.value == quote
    assert evidence.aux["collateral"] == collateral("sgx-dcap")
    report = verify_evidence(evidence, at=SGX_AT, expected_report_data=wanted)
    assert report.ok, report.failures
    assert report.tcb_status == "ConfigurationAndSWHardeningNeeded"


def sgx_evidence_report_data() -> bytes:
    return sgx_evidence().value[48 + 320 : 48 + 384]


def test_gramine_producer_refuses_a_quote_for_other_report_data(tmp_path: Path) -> None:
    fake = FakeGramine(tmp_path / "attestation", sgx_evidence().value)
    producer = GramineProducer(fake.root, fs=fake)
    other = report_data_for(nonce="n", public_keys=["k"], task_id="t", image_digest="d")
    with pytest.raises(EnclaveError, match="carries report data 48656c6c6f"):
        producer.produce(other)


def test_gramine_producer_refuses_non_dcap_and_missing_interface(tmp_path: Path) -> None:
    fake = FakeGramine(tmp_path / "attestation", sgx_evidence().value, attestation_type="none")
    with pytest.raises(EnclaveError, match="attestation type is 'none'"):
        GramineProducer(fake.root, fs=fake).produce(bytes(64))
    assert fake.writes == 0
    with pytest.raises(EnclaveError, match="gramine-direct has no attestation"):
        GramineProducer(tmp_path / "nowhere").produce(bytes(64))
    with pytest.raises(EnclaveError, match="64 bytes"):
        GramineProducer(fake.root, fs=fake).produce(b"short")


def test_gramine_producer_refuses_a_tdx_quote(tmp_path: Path) -> None:
    fake = FakeGramine(tmp_path / "attestation", tdx_evidence().value)
    with pytest.raises(EnclaveError, match="got a TDX quote, expected SGX"):
        GramineProducer(fake.root, fs=fake).produce(bytes(64))


# --- TDX and SNP through configfs-tsm ---------------------------------------------------------


def test_configfs_tsm_tdx_end_to_end(tmp_path: Path) -> None:
    quote = tdx_evidence().value
    wanted = quote[48 + 520 : 48 + 584]
    fake = FakeConfigfsTsm(tmp_path / "report", "tdx_guest", quote)
    producer = ConfigfsTsmProducer(
        "tdx",
        fake.root,
        collateral_source=collateral_from_file(vector("tdx-dcap/collateral.json")),
        fs=fake,
    )
    evidence = producer.produce(wanted)
    assert evidence.type == "tdx-quote" and evidence.value == quote
    assert len(fake.entries_made) == 1
    assert list(fake.root.iterdir()) == []  # the entry was removed
    report = verify_evidence(evidence, at=TDX_AT, expected_report_data=wanted)
    assert report.ok, report.failures


def test_configfs_tsm_snp_end_to_end_with_host_certificates(tmp_path: Path) -> None:
    blob = snp_report_bytes()
    wanted = blob[0x50:0x90]
    fake = FakeConfigfsTsm(tmp_path / "report", "sev_guest", blob, auxblob=snp_cert_table())
    evidence = ConfigfsTsmProducer("snp", fake.root, fs=fake).produce(wanted)
    assert evidence.type == "snp-report" and evidence.value == blob
    assert "BEGIN CERTIFICATE" in evidence.aux["vcek"]
    assert evidence.aux["cert_chain"].count("BEGIN CERTIFICATE") == 2
    report = verify_evidence(evidence, at=SNP_AT, expected_report_data=wanted)
    assert report.ok, report.failures
    assert report.details["product"] == "Milan"
    assert list(fake.root.iterdir()) == []


def test_configfs_tsm_snp_without_auxblob_uses_supplied_certificates(tmp_path: Path) -> None:
    blob = snp_report_bytes()
    fake = FakeConfigfsTsm(tmp_path / "report", "sev_guest", blob)
    vcek = certificates_pem(der("sev-snp/vcek.der"), where="vcek")
    producer = ConfigfsTsmProducer(
        "snp",
        fake.root,
        snp_vcek_pem=vcek,
        snp_cert_chain_pem=vector("sev-snp/cert_chain.pem").read_text(),
        privlevel=0,
        fs=fake,
    )
    evidence = producer.produce(blob[0x50:0x90])
    assert verify_evidence(evidence, at=SNP_AT).ok


def test_configfs_tsm_wrong_provider_is_refused(tmp_path: Path) -> None:
    fake = FakeConfigfsTsm(tmp_path / "report", "sev_guest", snp_report_bytes())
    with pytest.raises(EnclaveError, match="provider is 'sev_guest', expected 'tdx_guest'"):
        ConfigfsTsmProducer("tdx", fake.root, fs=fake).produce(bytes(64))
    assert list(fake.root.iterdir()) == []  # removed even on failure


def test_configfs_tsm_detects_a_racing_writer(tmp_path: Path) -> None:
    blob = snp_report_bytes()
    fake = FakeConfigfsTsm(tmp_path / "report", "sev_guest", blob)
    fake.race = True
    with pytest.raises(EnclaveError, match="another writer raced"):
        ConfigfsTsmProducer("snp", fake.root, fs=fake).produce(blob[0x50:0x90])


def test_configfs_tsm_report_for_other_data_is_refused(tmp_path: Path) -> None:
    fake = FakeConfigfsTsm(tmp_path / "report", "tdx_guest", tdx_evidence().value)
    with pytest.raises(EnclaveError, match="carries report data 9a9d48e7"):
        ConfigfsTsmProducer("tdx", fake.root, fs=fake).produce(bytes(64))


def test_configfs_tsm_missing_root(tmp_path: Path) -> None:
    with pytest.raises(EnclaveError, match="no configfs-tsm report interface"):
        ConfigfsTsmProducer("snp", tmp_path / "absent").produce(bytes(64))


def test_snp_cert_table_round_trip_and_errors() -> None:
    table = parse_snp_cert_table(snp_cert_table())
    assert set(table) == {"vcek", "ask", "ark"}
    with pytest.raises(EnclaveError, match="vcek entry points past the table end"):
        parse_snp_cert_table(snp_cert_table()[:100])
    with pytest.raises(EnclaveError, match="no terminating all-zero entry"):
        parse_snp_cert_table(b"\x01" * 24)


# --- detection: what the machine really offers -------------------------------------------------


def test_detect_finds_nothing_real_on_this_machine() -> None:
    # These VMs have neither Gramine's /dev/attestation nor configfs-tsm; detection must agree.
    assert not Path("/dev/attestation").exists()
    assert not Path("/sys/kernel/config/tsm/report").exists()
    assert detect_tees() == []
    producer = detect_producer("auto", measurement="sha256:image")
    assert isinstance(producer, SimProducer)
    evidence = producer.produce(bytes(64))
    report = verify_evidence(evidence)
    assert report.simulated and report.failed(CHECK_SIMULATED)
    for kind in ("sgx", "tdx", "snp"):
        with pytest.raises(EnclaveError, match=f"no {kind.upper()} TEE here"):
            detect_producer(kind)
    with pytest.raises(UsageError):
        detect_producer("nitro")


def test_detect_prepared_directories(tmp_path: Path) -> None:
    gramine = FakeGramine(tmp_path / "attestation", sgx_evidence().value)
    tsm = FakeConfigfsTsm(tmp_path / "report", "tdx_guest", tdx_evidence().value)

    class Both(FileOps):
        def mkdir(self, path: Path) -> None:
            tsm.mkdir(path)

        def rmdir(self, path: Path) -> None:
            tsm.rmdir(path)

    ops = Both()
    assert detect_tees(gramine_root=gramine.root, tsm_root=tsm.root, fs=ops) == ["sgx", "tdx"]
    assert list(tsm.root.iterdir()) == []  # the probe entry was removed
    auto = detect_producer("auto", gramine_root=gramine.root, tsm_root=tsm.root, fs=ops)
    assert isinstance(auto, GramineProducer)
    tdx = detect_producer("tdx", gramine_root=gramine.root, tsm_root=tsm.root, fs=ops)
    assert isinstance(tdx, ConfigfsTsmProducer) and tdx.evidence_type == "tdx-quote"
    with pytest.raises(EnclaveError, match="no SNP TEE here"):
        detect_producer("snp", gramine_root=gramine.root, tsm_root=tsm.root, fs=ops)
    shutil.rmtree(gramine.root)
    only_tdx = detect_producer("auto", gramine_root=gramine.root, tsm_root=tsm.root, fs=ops)
    assert isinstance(only_tdx, ConfigfsTsmProducer)


def test_sim_producer_is_honest() -> None:
    producer = SimProducer("sha256:img")
    evidence = producer.produce(bytes(range(64)))
    report = verify_evidence(evidence, allow_simulated=True, expected_report_data=bytes(range(64)))
    assert report.ok and report.debug and report.simulated
    assert report.measurements == {"measurement": "sha256:img"}


def test_real_file_ops_write_once(tmp_path: Path) -> None:
    path = tmp_path / "inblob"
    path.write_bytes(b"")
    FileOps().write_bytes(path, b"x" * 64)
    assert path.read_bytes() == b"x" * 64
    assert os.stat(path).st_size == 64
