"""Enclave images and their source stores through a real IPFS node (js-ipfs's daemon, Kubo RPC).

An image export pushed with `pox images push` comes back by measurement with `pox images fetch
--ipfs` on an empty cache; an index (or `--cid`) pointing at other bytes is refused and nothing
is imported. The source store of `pox/python` goes up file by file and comes back into an empty
folder, and a build from that folder alone gives the recorded measurement (the one build of
this module: it reuses the session's cached `pox/python` for the reference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from docker_images import images, require_docker

from pox_executor.enclave import engine
from pox_executor.enclave.images import build, cache, ipfs, recipes, tarball
from pox_executor.enclave.images import store as store_mod
from pox_executor.errors import UsageError, VerificationError
from pox_executor.storage.kubo import KuboClient
from pox_executor.storage.unixfs import get_profile

PROFILE = get_profile("kubo-cidv1")


@pytest.fixture(scope="module")
def node(ipfs_node_url: str) -> KuboClient:
    return KuboClient(ipfs_node_url, timeout_s=600.0)


def _tiny(tmp_path: Path, text: str) -> tuple[str, str]:
    """A one-layer pox image made here (one file), imported as `pox/<unique name>`."""
    root = tmp_path / f"root-{text}"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text(f"tiny image {text} of {tmp_path.name}\n")
    rootfs = tmp_path / f"{text}.tar"
    measurement = tarball.write_deterministic_tar(root, rootfs)
    name = f"tiny-{uuid.uuid4().hex[:10]}"
    build.import_rootfs(name, None, rootfs, measurement, "0" * 64)
    return name, measurement


def _drop(name: str, measurement: str) -> None:
    for tag in ("latest", measurement[:16]):
        engine.remove_image(f"pox/{name}:{tag}")
    assert engine.inspect_image(f"pox/{name}:latest") is None


def _pox(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.integration
def test_an_image_pushed_to_ipfs_comes_back_by_measurement_on_an_empty_cache(
    node: KuboClient, tmp_path: Path
) -> None:
    require_docker()
    name, measurement = _tiny(tmp_path, "a")
    index = tmp_path / "ipfs-index.json"
    try:
        pushed = _pox(
            "images", "push", f"pox/{name}:latest", "--ipfs", node.url, "--index", str(index)
        )
        assert pushed.returncode == 0, pushed.stderr
        entry = json.loads(index.read_text())["images"][measurement]
        assert entry["name"] == name and entry["profile"] == "kubo-cidv1"
        assert entry["cid"] in pushed.stdout
        _drop(name, measurement)
        empty = {"POX_IMAGE_CACHE": str(tmp_path / "empty-cache")}
        fetched = _pox(
            "images", "fetch", measurement, "--ipfs", node.url, "--index", str(index), env=empty
        )
        assert fetched.returncode == 0, fetched.stderr
        assert entry["cid"] in fetched.stdout
        inspected = engine.inspect_image(f"pox/{name}:{measurement[:16]}")
        assert inspected is not None and engine.measurement_of(inspected) == measurement
        _drop(name, measurement)
        # by CID alone, without the index
        again = _pox("images", "fetch", measurement, "--ipfs", node.url, "--cid", entry["cid"])
        assert again.returncode == 0, again.stderr
        assert engine.inspect_image(f"pox/{name}:latest") is not None
    finally:
        _drop(name, measurement)


@pytest.mark.integration
def test_an_index_or_cid_pointing_at_other_bytes_is_refused_and_nothing_is_imported(
    node: KuboClient, tmp_path: Path
) -> None:
    require_docker()
    wanted_name, wanted = _tiny(tmp_path, "wanted")
    other_name, other = _tiny(tmp_path, "other")
    index = tmp_path / "ipfs-index.json"
    try:
        ipfs.push_image(f"pox/{wanted_name}:latest", node, index, PROFILE)
        other_cid = ipfs.push_image(f"pox/{other_name}:latest", node, index, PROFILE)["cid"]
        _drop(wanted_name, wanted)
        document = json.loads(index.read_text())
        document["images"][wanted]["cid"] = other_cid  # the index now points at other bytes
        index.write_text(json.dumps(document))
        refused = _pox("images", "fetch", wanted, "--ipfs", node.url, "--index", str(index))
        assert refused.returncode == 1, refused.stderr
        assert "refused" in refused.stderr and wanted in refused.stderr
        assert "Traceback" not in refused.stderr
        assert engine.inspect_image(f"pox/{wanted_name}:latest") is None
        with pytest.raises(VerificationError, match="not the requested"):
            ipfs.fetch_image_ipfs(wanted, node, cid=other_cid)
        # bytes that are not the CID asked for (recomputed with the given profile: a v0 CID)
        with pytest.raises(VerificationError, match="served bytes whose CID is"):
            ipfs.fetch_image_ipfs(
                wanted, node, cid=other_cid, profile=get_profile("unixfs-v0-2015")
            )
        assert engine.inspect_image(f"pox/{wanted_name}:latest") is None
        with pytest.raises(UsageError, match="records no image"):
            ipfs.fetch_image_ipfs("f" * 64, node, index=index)
    finally:
        _drop(wanted_name, wanted)
        _drop(other_name, other)


def test_a_store_blob_whose_cid_the_index_swapped_is_refused(
    node: KuboClient, tmp_path: Path
) -> None:
    source = store_mod.SourceStore(tmp_path / "source")
    inputs = []
    for filename, body in (("a_1_all.deb", b"package a\n"), ("b_1_all.deb", b"package b\n")):
        path = tmp_path / filename
        path.write_bytes(body * 1000)
        sha = source.put_file(path)
        inputs.append({"kind": "deb", "filename": filename, "sha256": sha, "size_bytes": 10000})
    digest = "d" * 64
    source.write_manifest(
        "python", digest, {"image": "python", "recipe_digest": digest, "inputs": inputs}
    )
    index = tmp_path / "ipfs-index.json"
    [entry] = ipfs.push_store(source, node, index, PROFILE)
    assert sorted(entry["blobs"]) == sorted(i["sha256"] for i in inputs)
    fetched = ipfs.fetch_store("python", node, tmp_path / "good", index=index, digest=digest)
    assert fetched.is_file()
    for item in inputs:
        assert store_mod.SourceStore(tmp_path / "good").verified_blob(item["sha256"]) is not None
    document = json.loads(index.read_text())
    blobs = document["stores"][f"python-{digest}"]["blobs"]
    first, second = inputs[0]["sha256"], inputs[1]["sha256"]
    blobs[first] = blobs[second]
    index.write_text(json.dumps(document))
    with pytest.raises(VerificationError, match=r"is not a_1_all\.deb"):
        ipfs.fetch_store("python", node, tmp_path / "bad", index=index, digest=digest)
    assert not store_mod.SourceStore(tmp_path / "bad").has(first)
    with pytest.raises(UsageError, match="records no source store of pox/python"):
        ipfs.fetch_store("python", node, tmp_path / "none", index=index, digest="e" * 64)


@pytest.mark.integration
def test_a_build_from_the_exported_source_store_alone_gives_the_recorded_measurement(
    node: KuboClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auditor's machine: an empty cache, no Debian archive, no PyPI; the store is exported
    as one file, pushed to IPFS file by file, and fetched back into an empty folder."""
    first = images("python")["python"]
    digest = recipes.recipe_digest(recipes.load_recipe("python"))
    exported = tmp_path / "python-sources.tar"
    count = store_mod.export_store(
        store_mod.SourceStore(store_mod.default_store()),
        exported,
        [store_mod.default_store() / "manifests" / f"python-{digest}.json"],
    )
    assert count > 100  # the manifest, every .deb, wheel, sdist and build tool
    index = tmp_path / "ipfs-index.json"
    with store_mod.open_store(exported) as from_file:
        pushed = _pox(
            "images", "store", "push", "python", "--ipfs", node.url, "--index", str(index),
            "--store", str(from_file.root),
        )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    fetched_store = tmp_path / "fetched-store"
    fetched = _pox(
        "images", "store", "fetch", "python", "--ipfs", node.url, "--index", str(index),
        "-o", str(fetched_store),
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    monkeypatch.setenv("POX_IMAGE_CACHE", str(tmp_path / "auditor-cache"))
    monkeypatch.setenv("POX_SOURCE_STORE", str(tmp_path / "auditor-store"))
    unreachable = "http://127.0.0.1:9"  # discard port: nothing answers
    monkeypatch.setenv("POX_DEBIAN_MIRRORS", f"deb {unreachable}/debian bookworm main")
    monkeypatch.setenv("PIP_INDEX_URL", f"{unreachable}/simple")
    rebuilt = build.build_image("python", offline_from=fetched_store)
    assert rebuilt.cached is False and rebuilt.build_seconds is not None
    assert rebuilt.extra["recorded_measurement"] == first.measurement
    assert rebuilt.measurement == first.measurement
    assert not (tmp_path / "auditor-store").exists()  # nothing was fetched from elsewhere
    committed = cache.read_expected(recipes.images_dir() / "python" / cache.EXPECTED_FILE)
    assert rebuilt.measurement == committed, "the committed lock does not build its measurement"
