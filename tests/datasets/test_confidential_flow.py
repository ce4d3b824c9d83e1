"""The data owner's steps and the job's, against a real anvil and a real `pox sms serve`:
encrypt, push, register, grant; then a job attests and decrypts in memory, and a job whose
enclave is not granted, a swapped ciphertext and a non-owner's upload get nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from broker_process import BrokerProcess

from pox_executor.chain.client import ChainClient
from pox_executor.datasets.grant import grant_dataset
from pox_executor.datasets.job import DatasetAccessDenied, open_dataset, seal_result, unseal_result
from pox_executor.datasets.owner import encrypt_dataset, push_dataset, read_key_file
from pox_executor.datasets.registry import read_dataset, register_dataset
from pox_executor.errors import PoxError
from pox_executor.sms.admin import BrokerRefused, put_secret
from pox_executor.storage.localstore import LocalStore
from pox_executor.storage.multiformats import parse_cid

GENOTYPES = b"#CHROM\tPOS\tID\tREF\tALT\ts1\ts2\n1\t100\trs1\tA\tG\t0/1\t1/1\n"
ALLOWED = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def granted(
    chain: ChainClient, chain_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    folder = tmp_path_factory.mktemp("owner")
    source = folder / "cohort.vcf"
    source.write_bytes(GENOTYPES)
    done = encrypt_dataset(source)
    store = LocalStore(folder / "store")
    pushed = push_dataset(done.manifest_path, store=store, car=folder / "cohort.car")
    register_dataset(done.manifest_path, chain)
    manifest = grant_dataset(
        done.manifest_path,
        chain_broker.url,
        key_path=done.key_path,
        owner_key=chain.accounts.key("requester"),
        admin_token=chain_broker.token,
        measurements=[f"sim-report={ALLOWED}"],
        allow_simulated=True,
    )
    return {"done": done, "manifest": manifest, "store": store, "pushed": pushed, "folder": folder}


def test_owner_steps_fill_the_manifest_and_the_chain(granted: dict, chain: ChainClient) -> None:
    manifest = granted["manifest"]
    text = granted["done"].manifest_path.read_text()
    key_text = granted["done"].key_path.read_text().strip()
    assert key_text not in text and json.loads(text)["grant"]["resource"].endswith("/key")
    assert granted["done"].key_path.stat().st_mode & 0o777 == 0o600
    on_chain = read_dataset(chain, manifest.address)
    assert on_chain["checksum"] == manifest.checksum
    assert on_chain["multiaddr"] == f"/ipfs/{manifest.cid['cid']}"
    assert on_chain["owner"] == chain.accounts.address("requester")
    ciphertext = granted["done"].ciphertext.read_bytes()
    assert b"".join(granted["store"].cat(parse_cid(manifest.cid["cid"]))) == ciphertext
    assert GENOTYPES not in ciphertext
    # registering again is a no-op that finds the same entry
    assert register_dataset(granted["done"].manifest_path, chain).address == manifest.address


def test_granted_enclave_decrypts_in_private_memory(
    granted: dict, chain_broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POX_ENCLAVE_MEASUREMENT", ALLOWED)
    monkeypatch.setenv("POX_MEMORY_DIR", str(tmp_path))
    with open_dataset(granted["done"].ciphertext, chain_broker.url) as plaintext:
        assert plaintext.read_bytes() == GENOTYPES
        assert plaintext.parent.parent == tmp_path
    assert not plaintext.exists() and list(tmp_path.iterdir()) == []
    assert "simulated" in chain_broker.log().lower()


def test_enclave_not_in_policy_gets_nothing(
    granted: dict, chain_broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POX_ENCLAVE_MEASUREMENT", "sha256:" + "cd" * 32)
    monkeypatch.setenv("POX_MEMORY_DIR", str(tmp_path))
    with pytest.raises(DatasetAccessDenied, match=r"refused the key of dataset cohort\.vcf"):
        with open_dataset(granted["done"].ciphertext, chain_broker.url):
            pytest.fail("a refused enclave got the plaintext")
    assert list(tmp_path.iterdir()) == []


def test_swapped_ciphertext_is_refused_before_any_key_is_asked(
    granted: dict, chain_broker: BrokerProcess, tmp_path: Path
) -> None:
    fake = tmp_path / granted["done"].ciphertext.name
    fake.write_bytes(granted["done"].ciphertext.read_bytes()[:-1] + b"\0")
    (tmp_path / (fake.name + ".json")).write_text(granted["done"].manifest_path.read_text())
    with pytest.raises(PoxError, match="differs from the registered"):
        with open_dataset(fake, chain_broker.url):
            pytest.fail("a swapped ciphertext was decrypted")


def test_key_upload_signed_by_a_non_owner_is_refused(
    granted: dict, chain: ChainClient, chain_broker: BrokerProcess
) -> None:
    manifest = granted["manifest"]
    with pytest.raises(BrokerRefused) as refused:
        put_secret(
            chain_broker.url,
            manifest.key_resource,
            b"\0" * 32,
            signer_key=chain.accounts.key("other"),
            replace=True,
        )
    assert refused.value.status == 403
    assert len(read_key_file(granted["done"].key_path)) == 32


def test_result_sealed_for_the_requester_only(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def keypair(name: str) -> tuple[Path, Path]:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        priv = tmp_path / f"{name}.pem"
        pub = tmp_path / f"{name}.pub.pem"
        priv.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pub.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return priv, pub

    requester, requester_pub = keypair("requester")
    stranger, _ = keypair("stranger")
    result = tmp_path / "freqs.tsv"
    result.write_text("rs1\t0.75\n")
    manifest = seal_result(result, requester_pub, tmp_path / "freqs.tsv.pox-enc")
    assert (
        manifest.cid
        and manifest.recipient
        and b"0.75" not in (tmp_path / "freqs.tsv.pox-enc").read_bytes()
    )
    with pytest.raises(PoxError, match="another beneficiary"):
        unseal_result(tmp_path / "freqs.tsv.pox-enc", stranger, tmp_path / "x.tsv")
    out = unseal_result(tmp_path / "freqs.tsv.pox-enc", requester, tmp_path / "back.tsv")
    assert out.read_text() == "rs1\t0.75\n"
