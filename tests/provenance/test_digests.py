"""The digest cache and the content watch: a digest is reused only for bytes that were hashed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pox_executor.errors import PoxError
from pox_executor.provenance.digests import ContentWatch, DigestCache, Hasher


def watching_hasher() -> Hasher:
    return Hasher(DigestCache(None), workers=1, content_watch=ContentWatch())


def test_a_touch_after_hashing_does_not_make_the_file_read_again(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"x" * 4096)
    hasher = watching_hasher()
    first = hasher.digest_one("out.bin", base=tmp_path)
    os.utime(out, ns=(1, 1))  # a touch (Snakemake's, after every job) changes the stat key
    second = hasher.digest_one("out.bin", base=tmp_path)
    assert second.sha256 == first.sha256 == hashlib.sha256(b"x" * 4096).hexdigest()
    assert hasher.bytes_read == 4096
    hasher.close()


def test_a_same_size_rewrite_then_a_touch_is_hashed_again(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"x" * 4096)
    hasher = watching_hasher()
    hasher.digest_one("out.bin", base=tmp_path)
    with open(out, "r+b") as handle:  # same inode, same size, new bytes
        handle.write(b"y")
    os.utime(out)
    again = hasher.digest_one("out.bin", base=tmp_path)
    assert again.sha256 == hashlib.sha256(b"y" + b"x" * 4095).hexdigest()
    assert hasher.bytes_read == 2 * 4096
    hasher.close()


def test_a_writer_that_only_opens_and_closes_still_forces_a_new_read(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"x" * 10)
    hasher = watching_hasher()
    hasher.digest_one("out.bin", base=tmp_path)
    with open(out, "r+b"):  # opened for writing: it could have stored through a mapping
        pass
    os.utime(out)
    hasher.digest_one("out.bin", base=tmp_path)
    assert hasher.bytes_read == 20
    hasher.close()


def test_without_a_watch_a_touch_costs_one_read(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"x" * 10)
    hasher = Hasher(DigestCache(None), workers=1)
    hasher.digest_one("out.bin", base=tmp_path)
    os.utime(out)
    hasher.digest_one("out.bin", base=tmp_path)
    assert hasher.bytes_read == 20


def test_the_digest_cache_opens_off_the_start_and_reports_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "digests.sqlite"
    cache = DigestCache(path)  # opens on a thread; the first use waits for it
    target = tmp_path / "f"
    target.write_text("x")
    cache.put(target.stat(), "ab" * 32)
    cache.close()
    reopened = DigestCache(path)
    assert reopened.get(target.stat()) == "ab" * 32, "kept in the database between runs"
    reopened.close()
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(PoxError, match=r"digest cache .*broken\.sqlite"):
        DigestCache(broken).get(target.stat())
