"""A statement's signing key must be the key its TEE evidence binds (README, "Trust").

`audit.evidence_check.check_evidence` is what `pox verify` and `pox proof` run on every session
and job. With genuine SGX, TDX and SEV-SNP evidence (tests/enclave/vectors) a statement signed by
a key of ours can never be bound, because the report data was fixed by the hardware for another
key: verification must refuse it for exactly that reason, at a time when every other check
passes. The simulated identity is the positive control: the same check passes when the key is the
one bound, and fails again when another key signs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from attest_vectors import SGX_AT, SNP_AT, TDX_AT, sgx_evidence, snp_evidence, tdx_evidence

from pox_executor.audit.evidence_check import check_evidence
from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.producers import ConfigfsTsmProducer, GramineProducer, SimProducer
from pox_executor.enclave.verifiers import Policy
from pox_executor.enclave.verifiers.claims import iso
from pox_executor.provenance.enclave_identity import HOST_KEY, key_location, new_enclave_identity
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.statement import Binding

IMAGE = "sha256:" + "cd" * 32
ACCEPT_ANY_TCB = Policy(allow_debug=True, source="<test: any TCB>")


def binding_for(*public_hex: str) -> Binding:
    return Binding(
        nonce=secrets.token_hex(32),
        public_keys=tuple(public_hex),
        task_id="run/job/1/attempt/1",
        image_digest=IMAGE,
    )


@pytest.mark.parametrize(
    ("make", "at"),
    [(sgx_evidence, SGX_AT), (tdx_evidence, TDX_AT), (snp_evidence, SNP_AT)],
    ids=["sgx", "tdx", "snp"],
)
def test_tee_statement_whose_key_the_evidence_does_not_bind_is_refused(
    make: Callable[[], Evidence], at: datetime
) -> None:
    signer = SigningKey.generate().public_key.hex()
    result = check_evidence(
        make(),
        binding_for(signer),
        signer_public_hex=signer,
        allow_simulated=False,
        attested_at=iso(at),
        policy=ACCEPT_ANY_TCB,
    )
    assert not result.ok
    # genuine, fresh at `at`, accepted by the policy: only the key binding fails
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith("report-data:")
    assert "does not bind the presented key" in result.problems[0]


def test_tee_statement_signed_by_a_key_the_binding_does_not_name_is_refused() -> None:
    named = SigningKey.generate().public_key.hex()
    signer = SigningKey.generate().public_key.hex()
    result = check_evidence(
        snp_evidence(),
        binding_for(named),
        signer_public_hex=signer,
        allow_simulated=False,
        attested_at=iso(SNP_AT),
        policy=ACCEPT_ANY_TCB,
    )
    assert any("not the key" in problem and "that signed" in problem for problem in result.problems)


def test_positive_control_the_bound_key_passes_and_another_signer_fails() -> None:
    identity = new_enclave_identity(
        SimProducer("img"), task_id="run/job/1/attempt/1", image_digest=IMAGE
    )
    assert identity.key_location == HOST_KEY  # the sim backend says the host holds the key
    signer = identity.key.public_key.hex()
    bound = check_evidence(
        identity.evidence,
        identity.binding,
        signer_public_hex=signer,
        allow_simulated=True,
        attested_at=None,
        policy=ACCEPT_ANY_TCB,
    )
    assert bound.ok, bound.problems
    intruder = SigningKey.generate().public_key.hex()
    swapped = check_evidence(
        identity.evidence,
        binding_for(intruder),
        signer_public_hex=intruder,
        allow_simulated=True,
        attested_at=None,
        policy=ACCEPT_ANY_TCB,
    )
    assert [p for p in swapped.problems if p.startswith("report-data:")]


def test_tee_producers_place_the_key_inside_the_tee(tmp_path: Path) -> None:
    root = tmp_path
    for producer in (
        GramineProducer(root / "attestation"),
        ConfigfsTsmProducer("tdx", root / "tsm"),
        ConfigfsTsmProducer("snp", root / "tsm"),
    ):
        assert key_location(producer).startswith("inside the TEE")
        assert "the host never holds it" in key_location(producer)
