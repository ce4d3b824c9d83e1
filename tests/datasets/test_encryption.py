"""The dataset formats: round trips, and every alteration of a `pox-aes256gcm-v1` file refused
(truncation, reordering, duplication, bit flips, trailing bytes, wrong key); iExec's format
read and written as iExec's SDK does (IV then AES-256-CBC, PKCS#7)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pox_executor.datasets.encryption import (
    HEADER_BYTES,
    TAG_BYTES,
    DecryptionError,
    decrypt_iexec_stream,
    decrypt_stream,
    encrypt_iexec_stream,
    encrypt_stream,
    new_key,
)
from pox_executor.errors import UsageError

CHUNK = 64


def _encrypt(data: bytes, key: bytes, chunk: int = CHUNK) -> bytes:
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, key, chunk_bytes=chunk)
    assert result.checksum == "0x" + hashlib.sha256(out.getvalue()).hexdigest()
    assert result.plaintext_bytes == len(data)
    return out.getvalue()


def _decrypt(blob: bytes, key: bytes) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, key)
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    key = new_key()
    data = os.urandom(size)
    blob = _encrypt(data, key)
    chunks = max(1, -(-size // CHUNK))
    assert len(blob) == HEADER_BYTES + size + chunks * TAG_BYTES
    assert _decrypt(blob, key) == data


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    header, body = blob[:HEADER_BYTES], blob[HEADER_BYTES:]
    size = CHUNK + TAG_BYTES
    return header, [body[i : i + size] for i in range(0, len(body), size)]


def test_every_alteration_is_refused() -> None:
    key = new_key()
    data = os.urandom(4 * CHUNK)  # exactly four full chunks: the last is full and sealed last
    header, chunks = _chunks(_encrypt(data, key))
    assert len(chunks) == 4
    altered = {
        "dropped last chunk": header + b"".join(chunks[:3]),
        "dropped middle chunk": header + chunks[0] + chunks[2] + chunks[3],
        "swapped chunks": header + chunks[1] + chunks[0] + chunks[2] + chunks[3],
        "duplicated chunk": header + chunks[0] + chunks[0] + chunks[1] + chunks[2] + chunks[3],
        "trailing bytes": header + b"".join(chunks) + b"x",
        "cut inside a chunk": header + b"".join(chunks)[:-5],
        "flipped bit": header
        + chunks[0]
        + bytes([chunks[1][0] ^ 1])
        + chunks[1][1:]
        + chunks[2]
        + chunks[3],
        "other chunk size in header": header[:8]
        + (CHUNK + 1).to_bytes(4, "big")
        + header[12:]
        + b"".join(chunks),
        "no header": b"".join(chunks),
    }
    for name, blob in altered.items():
        with pytest.raises(DecryptionError):
            _decrypt(blob, key)
            pytest.fail(f"{name} was accepted")
    with pytest.raises(DecryptionError, match="failed authentication"):
        _decrypt(header + b"".join(chunks), new_key())


def test_chunks_from_another_file_under_the_same_key_are_refused() -> None:
    key = new_key()
    one = _chunks(_encrypt(os.urandom(2 * CHUNK), key))
    two = _chunks(_encrypt(os.urandom(2 * CHUNK), key))
    with pytest.raises(DecryptionError):
        _decrypt(one[0] + one[1][0] + two[1][1], key)


def test_bad_key_length_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="32 bytes"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), b"short")


def test_iexec_format_matches_iexec_construction() -> None:
    key = new_key()
    data = os.urandom(1000)
    out = io.BytesIO()
    result = encrypt_iexec_stream(io.BytesIO(data), out, key)
    blob = out.getvalue()
    # decrypt independently: IV (16 bytes) then AES-256-CBC, PKCS#7
    decryptor = Cipher(algorithms.AES(key), modes.CBC(blob[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    plain = (
        unpadder.update(decryptor.update(blob[16:]) + decryptor.finalize()) + unpadder.finalize()
    )
    assert plain == data
    assert result.checksum == "0x" + hashlib.sha256(blob).hexdigest()
    back = io.BytesIO()
    assert decrypt_iexec_stream(io.BytesIO(blob), back, key).checksum == result.checksum
    assert back.getvalue() == data


def test_iexec_wrong_key_or_cut_ciphertext_is_refused() -> None:
    key = new_key()
    out = io.BytesIO()
    encrypt_iexec_stream(io.BytesIO(b"genotypes" * 50), out, key)
    with pytest.raises(DecryptionError):
        decrypt_iexec_stream(io.BytesIO(out.getvalue()[:-3]), io.BytesIO(), key)
    with pytest.raises(DecryptionError, match="no IV"):
        decrypt_iexec_stream(io.BytesIO(b"short"), io.BytesIO(), key)


class _Zeros:
    """A reader of `size` zero bytes that never holds them all (a stand-in for a 10 GB file)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, count: int = -1) -> bytes:
        count = self.left if count < 0 else min(count, self.left)
        self.left -= count
        return bytes(count)


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def test_memory_stays_bounded_by_the_chunk_size() -> None:
    import tracemalloc

    size = 96 << 20
    tracemalloc.start()
    try:
        sink = _Sink()
        result = encrypt_stream(_Zeros(size), sink, new_key())  # 1 MiB chunks
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.plaintext_bytes == size and sink.count == result.ciphertext_bytes
    assert peak < 8 << 20, f"peak {peak} bytes for a {size}-byte stream"
