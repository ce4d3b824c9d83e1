"""The KBS runtime-data binding and names, checked against published values."""

from __future__ import annotations

import hashlib

import pytest

from pox_executor.sms.protocol import (
    KbsProtocolError,
    check_resource_path,
    hash_algorithm_of,
    runtime_data_digest,
    select_hash_algorithm,
)


def test_runtime_data_digest_matches_trustee_attestation_service_vector() -> None:
    # Trustee's attestation-service unit test: SHA-384 of the canonical JSON of this structure
    structured = {"b": 1, "a": "test", "c": {"d": "e"}}
    expected = bytes.fromhex(
        "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"
        "4597480a186427c813ca941da78870c3"
    )
    digest = runtime_data_digest(structured, "sha384")
    assert digest[:48] == expected
    assert digest[48:] == bytes(16)  # zero-padded to the 64 report-data bytes


def test_digest_is_over_rfc8785_canonical_form() -> None:
    data = {"tee-pubkey": {"y": "2", "x": "1"}, "nonce": "n\u00e9"}
    canonical = '{"nonce":"n\u00e9","tee-pubkey":{"x":"1","y":"2"}}'.encode()
    assert runtime_data_digest(data, "sha512") == hashlib.sha512(canonical).digest()
    assert runtime_data_digest(data, "sha256")[:32] == hashlib.sha256(canonical).digest()


def test_hash_selection_defaults_to_sha384() -> None:
    assert hash_algorithm_of("") == "sha384"
    assert hash_algorithm_of({"selected-hash-algorithm": "SHA512"}) == "sha512"
    with pytest.raises(KbsProtocolError, match="unsupported hash"):
        hash_algorithm_of({"selected-hash-algorithm": "md5"})
    assert select_hash_algorithm("") == "sha384"
    assert select_hash_algorithm({"supported-hash-algorithms": ["sha256", "SHA512"]}) == "sha512"
    with pytest.raises(KbsProtocolError, match="none of"):
        select_hash_algorithm({"supported-hash-algorithms": ["sm3"]})


@pytest.mark.parametrize(
    "path", ["a/b", "a/b/c/d", "../b/c", "a/./c", "a/b/c d", "a//c", "a/b/" + "x" * 129]
)
def test_bad_resource_paths_are_not_found(path: str) -> None:
    with pytest.raises(KbsProtocolError) as caught:
        check_resource_path(path)
    assert caught.value.status == 404


def test_good_resource_path() -> None:
    assert check_resource_path("/dataset/0xAbC/key.v1/") == "dataset/0xAbC/key.v1"
