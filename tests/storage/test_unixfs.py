"""Offline CIDs equal `ipfs add`'s: the IPIP-499 fixtures, Kubo's well-known CIDs, and the
importer's streaming invariants (chunk boundaries never change a CID)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from pox_executor.errors import UsageError
from pox_executor.storage.multiformats import parse_cid
from pox_executor.storage.unixfs import FileImporter, get_profile, import_bytes

V0 = get_profile("unixfs-v0-2015")
V1_2025 = get_profile("unixfs-v1-2025")
KUBO_V1 = get_profile("kubo-cidv1")
KIB = 1024


def deterministic_bytes(size: int, seed: str) -> bytes:
    """The fixtures' content generator (Kubo's test harness and js-ipfs-unixfs' IPIP-499 tests):
    the ChaCha20 keystream under key SHA-256(seed), all-zero nonce, counter 0."""
    key = hashlib.sha256(seed.encode()).digest()
    return Cipher(algorithms.ChaCha20(key, b"\0" * 16), None).encryptor().update(b"\0" * size)


# Values from IPIP-499 "UnixFS CID Profiles" (ipfs/specs src/ipips/ipip-0499.md, test fixtures)
# and the tests that produce them (ipfs/kubo test/cli/cid_profiles_test.go; js-ipfs-unixfs
# ipip-499 tests for the chunk-boundary cases).
IPIP_499 = [
    (V0, b"hello world", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
    (V0, (262144, "chunk-v0-seed"), "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE"),
    (V0, (262145, "chunk-v0-seed"), "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ"),
    (V0, (44544 * KIB, "v0-seed"), "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"),
    (V0, (44544 * KIB + 1, "v0-seed"), "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW"),
    (V0, (44800 * KIB, "v0-seed"), "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"),
    (V1_2025, b"hello world", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    (
        V1_2025,
        (1048576, "chunk-v1-seed"),
        "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta",
    ),
    (
        V1_2025,
        (1048577, "chunk-v1-seed"),
        "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64",
    ),
]


@pytest.mark.parametrize(("profile", "content", "expected"), IPIP_499)
def test_ipip_499_fixtures(profile, content, expected) -> None:
    data = content if isinstance(content, bytes) else deterministic_bytes(*content)
    assert str(import_bytes(data, profile).cid) == expected


def test_kubo_well_known_cids() -> None:
    # the empty file under `ipfs add` and `ipfs add --cid-version=1` (raw empty leaf)
    assert str(import_bytes(b"", V0).cid) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert (
        str(import_bytes(b"", KUBO_V1).cid)
        == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    )
    # `echo "Hello IPFS" | ipfs add --cid-version 1` (kubo test/sharness/t0124 README)
    assert (
        str(import_bytes(b"Hello IPFS\n", KUBO_V1).cid)
        == "bafkreidfdrlkeq4m4xnxuyx6iae76fdm4wgl5d4xzsb77ixhyqwumhz244"
    )


def test_kubo_cidv1_multi_level_tree_has_raw_leaves_and_dag_pb_root() -> None:
    data = deterministic_bytes(175 * 262144 + 5, "pox")
    result = import_bytes(data, KUBO_V1)
    assert result.cid.version == 1 and result.cid.codec_name == "dag-pb"
    assert result.size_bytes == len(data)
    # same 256 KiB / 174-link tree shape as unixfs-v0-2015, leaves differ: distinct CIDs
    assert str(result.cid) != str(import_bytes(data, V0).cid.to_v1())


@pytest.mark.parametrize("write_bytes", [7, 1000, 262144, 262145, 1 << 20])
def test_write_boundaries_do_not_change_the_cid(write_bytes: int) -> None:
    data = deterministic_bytes(3 * 262144 + 17, "boundaries")
    importer = FileImporter(V0)
    for offset in range(0, len(data), write_bytes):
        importer.write(data[offset : offset + write_bytes])
    assert importer.finish().cid == import_bytes(data, V0).cid


def test_cid_strings_round_trip() -> None:
    for text in (
        "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf",
        "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64",
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
    ):
        assert str(parse_cid(text)) == text


def test_unknown_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown CID profile 'v9'"):
        get_profile("v9")
