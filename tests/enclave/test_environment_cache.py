"""The host environment description kept between runs (enclave/environment.py): a cached
description is used only while everything it was read from is unchanged, so a signed
statement never carries a stale one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pox_executor.enclave import environment
from pox_executor.enclave.environment import (
    CACHE_FILE,
    describe_host_environment,
    environment_key,
)


def _install(site: Path, name: str, version: str) -> Path:
    """A distribution as pip leaves it: `<name>-<version>.dist-info/METADATA`."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return info


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (the tests set distinct mtimes
    themselves where a change could otherwise fall in the same timestamp tick)."""
    monkeypatch.setattr(environment, "RECENT_S", 0.0)


@pytest.mark.usefixtures("settled")
def test_cached_description_equals_a_fresh_one_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _install(site, "poxprobepkg", "1.0")
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache"
    first = describe_host_environment(cache)
    assert "poxprobepkg==1.0" in first.packages
    assert first == describe_host_environment(None), "the cache stores the description as is"
    stored = json.loads((cache / CACHE_FILE).read_text())
    assert stored["key"] == environment_key()
    # Reused while the key matches: a description edited in the cache file comes back.
    stored["description"]["machine"] = "from-the-cache"
    (cache / CACHE_FILE).write_text(json.dumps(stored))
    assert describe_host_environment(cache).machine == "from-the-cache"


@pytest.mark.usefixtures("settled")
@pytest.mark.parametrize("change", ["install", "upgrade", "remove", "edit-metadata"])
def test_any_package_change_invalidates_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    site = tmp_path / "site"
    info = _install(site, "poxprobepkg", "1.0")
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache"
    before = describe_host_environment(cache)
    if change == "install":
        _install(site, "poxotherpkg", "3.1")
        expected = {"poxprobepkg==1.0", "poxotherpkg==3.1"}
    elif change == "upgrade":  # pip removes the old dist-info and writes the new one
        (info / "METADATA").unlink()
        info.rmdir()
        _install(site, "poxprobepkg", "1.1")
        expected = {"poxprobepkg==1.1"}
    elif change == "remove":
        (info / "METADATA").unlink()
        info.rmdir()
        expected = set()
    else:  # same size, same directory entries: only the file's own identity changes
        metadata = info / "METADATA"
        mtime_ns = metadata.stat().st_mtime_ns
        metadata.write_text(metadata.read_text().replace("1.0", "2.0"))
        os.utime(metadata, ns=(mtime_ns + 10**9, mtime_ns + 10**9))
        expected = {"poxprobepkg==2.0"}
    after = describe_host_environment(cache)
    ours = {p for p in after.packages if p.startswith(("poxprobepkg", "poxotherpkg"))}
    assert ours == expected
    assert after.digest() != before.digest()
    assert after == describe_host_environment(None)


@pytest.mark.usefixtures("settled")
def test_a_damaged_or_foreign_cache_file_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fresh = describe_host_environment(None)
    cache.mkdir()
    for text in ("", "{", "[]", json.dumps({"format": "other", "key": environment_key()})):
        (cache / CACHE_FILE).write_text(text)
        assert describe_host_environment(cache) == fresh
    stored = json.loads((cache / CACHE_FILE).read_text())  # rewritten by the last call
    stored["description"]["packages"].append("injected==1")  # list no longer matches its hash
    (cache / CACHE_FILE).write_text(json.dumps(stored))
    assert describe_host_environment(cache) == fresh


def test_an_unwritable_cache_directory_is_skipped(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    assert describe_host_environment(blocker / "pox") == describe_host_environment(None)


def test_nothing_is_cached_while_a_package_changed_just_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second change within the same timestamp tick could keep the file's identity: so a file
    # changed within RECENT_S seconds keeps the description out of the cache (git's racy check).
    site = tmp_path / "site"
    _install(site, "poxprobepkg", "1.0")
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache"
    assert environment_key() is None
    assert "poxprobepkg==1.0" in describe_host_environment(cache).packages
    assert not (cache / CACHE_FILE).exists()
