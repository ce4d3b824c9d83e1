"""The Kubo RPC client against a real IPFS node started here (js-ipfs's daemon, same /api/v0):
version, add under each profile the node can build (CID checked against the offline one), cat,
pin/add, and the local store's CAR export imported into the node and read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_unixfs import deterministic_bytes

from pox_executor.storage.kubo import IpfsNodeError, KuboClient, dag_import
from pox_executor.storage.localstore import LocalStore
from pox_executor.storage.multiformats import parse_cid
from pox_executor.storage.unixfs import get_profile, import_bytes


@pytest.fixture(scope="module")
def node(ipfs_node_url: str) -> KuboClient:
    return KuboClient(ipfs_node_url)


def test_version(node: KuboClient) -> None:
    assert node.version().version


@pytest.mark.parametrize(
    ("profile_name", "size"),
    [
        ("unixfs-v0-2015", 5 * 262144 + 3),
        ("kubo-cidv1", 3 * 262144 + 3),
        ("kubo-cidv1", 100),  # one raw leaf
    ],
)
def test_add_gives_the_offline_cid_and_cat_returns_the_bytes(
    node: KuboClient, tmp_path: Path, profile_name: str, size: int
) -> None:
    profile = get_profile(profile_name)
    data = deterministic_bytes(size, f"node-{profile_name}")
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    result = node.add(path, profile)
    assert result.cid == import_bytes(data, profile).cid
    assert b"".join(node.cat(result.cid)) == data
    assert [str(p) for p in map(parse_cid, node.pin_add(result.cid))] == [str(result.cid)]


def test_local_store_car_imports_into_the_node(node: KuboClient, tmp_path: Path) -> None:
    data = deterministic_bytes(600_000, "car-import")
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    store = LocalStore(tmp_path / "store")
    cid = store.add_file(path, get_profile("kubo-cidv1")).cid
    store.export_car(cid, tmp_path / "data.car")
    assert [str(parse_cid(root)) for root in dag_import(node, tmp_path / "data.car")] == [str(cid)]
    assert b"".join(node.cat(cid)) == data


def test_unreachable_node_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(IpfsNodeError, match="did not answer version"):
        KuboClient(f"http://127.0.0.1:{port}").version()


def test_unknown_cid_is_refused_by_the_node(node: KuboClient) -> None:
    with pytest.raises(IpfsNodeError, match="refused"):
        b"".join(node.cat("not-a-cid"))
