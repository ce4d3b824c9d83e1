"""The embedded store keeps every block, streams files back, and exports and imports CARv1."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from test_unixfs import deterministic_bytes

from pox_executor.storage.car import read_car, write_car
from pox_executor.storage.localstore import LocalStore, StoreError
from pox_executor.storage.multiformats import parse_cid
from pox_executor.storage.unixfs import get_profile, import_bytes


@pytest.mark.parametrize(
    ("profile_name", "size"),
    [("unixfs-v0-2015", 175 * 262144 + 99), ("kubo-cidv1", 3 * 262144 + 99)],  # 2 and 1 levels
)
def test_add_cat_export_import_round_trip(tmp_path: Path, profile_name: str, size: int) -> None:
    profile = get_profile(profile_name)
    data = deterministic_bytes(size, "store")
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    store = LocalStore(tmp_path / "store")
    result = store.add_file(source, profile)
    assert result.cid == import_bytes(data, profile).cid
    assert b"".join(store.cat(result.cid)) == data

    car = tmp_path / "data.car"
    size = store.export_car(result.cid, car)
    assert size == car.stat().st_size
    other = LocalStore(tmp_path / "other")
    assert other.import_car(car) == [result.cid]
    assert b"".join(other.cat(result.cid)) == data


def test_car_header_and_sections_are_carv1(tmp_path: Path) -> None:
    result_blocks: list = []
    result = import_bytes(
        b"hello world",
        get_profile("unixfs-v0-2015"),
        sink=lambda c, b: result_blocks.append((c, b)),
    )
    out = io.BytesIO()
    write_car(out, [result.cid], result_blocks)
    raw = out.getvalue()
    # dag-cbor header: {"roots": [tag42(0x00 || cid)], "version": 1}
    assert raw[1:8] == b"\xa2\x65roots"
    assert raw[8:11] == b"\x81\xd8\x2a"
    assert raw.endswith(b"\x0bhello world\x18\x0b")
    roots, blocks = read_car(io.BytesIO(raw))
    assert roots == [result.cid] and list(blocks) == result_blocks


def test_corrupt_block_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "f"
    source.write_bytes(b"precious")
    cid = store.add_file(source, get_profile("kubo-cidv1")).cid
    block_file = next((tmp_path / "store" / "blocks").rglob("*"), None)
    files = [p for p in (tmp_path / "store" / "blocks").rglob("*") if p.is_file()]
    assert block_file is not None and len(files) == 1
    files[0].write_bytes(b"tampered")
    with pytest.raises(StoreError, match="corrupt"):
        b"".join(store.cat(cid))


def test_missing_block_names_the_cid_and_the_store(tmp_path: Path) -> None:
    cid = parse_cid("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
    with pytest.raises(StoreError, match=f"{cid} is not in the store"):
        b"".join(LocalStore(tmp_path).cat(cid))
