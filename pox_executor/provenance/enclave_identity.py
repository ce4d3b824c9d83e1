"""A statement-signing identity made where the TEE is: the key, its binding and the evidence.

This module owns the step a job (or a recording session) takes inside its TEE before signing
anything: generate the Ed25519 statement-signing key in this process, build the `Binding` (nonce,
public key, task, image digest, optional PoCo enclave challenge address) and ask the TEE for
evidence over its report data, so the hardware vouches for the key. With a real producer (SGX
through Gramine, TDX or SEV-SNP through configfs-tsm) this process runs inside the TEE and the
private key never leaves it; with the `sim` producer the "TEE" is the host itself, and
`key_location` says so. It never writes the key anywhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pox_executor.enclave.evidence import Evidence, EvidenceProducer
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.statement import Binding

HOST_KEY = "host (simulated TEE: the host holds the signing key; proves nothing)"


@dataclass(frozen=True)
class EnclaveIdentity:
    """A signing key made in this process plus the evidence that binds its public key."""

    key: SigningKey
    binding: Binding
    evidence: Evidence
    key_location: str

    @property
    def simulated(self) -> bool:
        return self.evidence.type == "sim-report"


def key_location(producer: EvidenceProducer) -> str:
    """Where a key made next to `producer` lives, in words for logs and reports."""
    if producer.evidence_type == "sim-report":
        return HOST_KEY
    return f"inside the TEE ({producer.evidence_type}); the host never holds it"


def new_enclave_identity(
    producer: EvidenceProducer,
    *,
    task_id: str,
    image_digest: str,
    nonce: str | None = None,
    enclave_challenge: str | None = None,
) -> EnclaveIdentity:
    """Generate the signing key here and get evidence binding it (EnclaveError without a TEE)."""
    key = SigningKey.generate()
    binding = Binding(
        nonce=nonce or secrets.token_hex(32),
        public_keys=(key.public_key.hex(),),
        task_id=task_id,
        image_digest=image_digest,
        enclave_challenge=enclave_challenge,
    )
    evidence = producer.produce(binding.report_data())
    return EnclaveIdentity(
        key=key, binding=binding, evidence=evidence, key_location=key_location(producer)
    )
