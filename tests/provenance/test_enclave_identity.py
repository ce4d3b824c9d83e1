"""The statement-signing key is made next to the evidence producer and bound into its evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from pox_executor.enclave.producers import ConfigfsTsmProducer, GramineProducer, SimProducer
from pox_executor.enclave.verifiers import verify_evidence
from pox_executor.errors import EnclaveError
from pox_executor.provenance.enclave_identity import HOST_KEY, key_location, new_enclave_identity

IMAGE = "sha256:" + "ab" * 32


def test_sim_identity_is_bound_and_says_the_host_holds_the_key() -> None:
    identity = new_enclave_identity(SimProducer("img"), task_id="run/session/0", image_digest=IMAGE)
    assert identity.simulated and identity.key_location == HOST_KEY
    assert identity.binding.public_keys == (identity.key.public_key.hex(),)
    report = verify_evidence(
        identity.evidence,
        expected_report_data=identity.binding.report_data(),
        allow_simulated=True,
    )
    assert report.ok, report.failures
    # a different key is not what the evidence vouches for
    other = new_enclave_identity(SimProducer("img"), task_id="run/session/0", image_digest=IMAGE)
    assert not verify_evidence(
        identity.evidence,
        expected_report_data=other.binding.report_data(),
        allow_simulated=True,
    ).ok


def test_real_tee_producers_refuse_without_a_tee(tmp_path: Path) -> None:
    for producer in (
        GramineProducer(tmp_path / "attestation"),
        ConfigfsTsmProducer("tdx", tmp_path / "tsm"),
        ConfigfsTsmProducer("snp", tmp_path / "tsm"),
    ):
        assert "inside the TEE" in key_location(producer)
        with pytest.raises(EnclaveError):
            new_enclave_identity(producer, task_id="t", image_digest=IMAGE)
