"""The requester's side of a confidential-cohort run folder, shared by the workflow tests.

Writes the requester's RSA public key (the beneficiary results are sealed for) and the workflow's
config naming the broker, the dataset and that key; the caller puts the Snakefile and the
ciphertext in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DATASET = "data/cohort.vcf.pox-enc"
REQUESTER_KEY = "keys/requester.pub.pem"


def write_requester_config(run: Path, broker_url: str) -> rsa.RSAPrivateKey:
    """Make the requester's key pair and `config.yaml`; returns the private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (run / REQUESTER_KEY).parent.mkdir(parents=True, exist_ok=True)
    (run / REQUESTER_KEY).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = {"broker": broker_url, "dataset": DATASET, "requester_key": REQUESTER_KEY}
    (run / "config.yaml").write_text(json.dumps(config))
    return key


def files_with(folder: Path, needle: bytes) -> list[Path]:
    """Every file under `folder` whose bytes contain `needle` (a plaintext leak check).

    A job's stage may be going away meanwhile (the runtime removes stages on a background
    thread): what vanishes during the walk is skipped, everything still there is read.
    """
    found = []
    for root, _dirs, files in os.walk(folder):  # os.walk skips a directory that vanished
        for name in files:
            path = Path(root) / name
            try:
                if path.is_file() and needle in path.read_bytes():
                    found.append(path)
            except FileNotFoundError:
                continue
    return found
