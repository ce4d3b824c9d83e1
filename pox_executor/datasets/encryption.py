"""Dataset encryption formats: PoX's chunked AES-256-GCM (`pox-aes256gcm-v1`) and iExec's
`iexec-aes256cbc` (a 16-byte IV followed by AES-256-CBC ciphertext with PKCS#7 padding).

`pox-aes256gcm-v1` (docs/datasets.md) is the STREAM construction over AES-256-GCM:

    header  = b"POXDS\\x00\\x01\\n" || chunk_size (u32 BE) || nonce_prefix (7 random bytes)
    chunk i = AES-256-GCM(key, nonce = nonce_prefix || i (u32 BE) || last (1 byte: 1 or 0),
                          aad = header, plaintext chunk i)   -> ciphertext || 16-byte tag

Every chunk but the last holds exactly `chunk_size` plaintext bytes; the last holds 0 to
`chunk_size` bytes and is the only one sealed with `last = 1`. So a reordered, dropped,
duplicated or foreign chunk fails its tag, a truncated file ends on a chunk not sealed as
last, and bytes after the last chunk are refused. Memory is one chunk, whatever the file size.
The dataset checksum is iExec's: `0x` + SHA-256 of the ciphertext file.
"""

from __future__ import annotations

import hashlib
import os
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pox_executor.errors import PoxError, UsageError

POX_FORMAT = "pox-aes256gcm-v1"
IEXEC_FORMAT = "iexec-aes256cbc"
FORMATS = (POX_FORMAT, IEXEC_FORMAT)
MAGIC = b"POXDS\x00\x01\n"
HEADER_BYTES = len(MAGIC) + 4 + 7
TAG_BYTES = 16
KEY_BYTES = 32
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 64 << 20
_MAX_CHUNKS = 1 << 32


class DecryptionError(PoxError):
    """Ciphertext was altered, truncated, reordered, or the key is wrong."""


@dataclass(frozen=True)
class CipherResult:
    format: str
    checksum: str  # "0x" + sha256 hex of the ciphertext bytes (iExec's dataset checksum)
    plaintext_bytes: int
    ciphertext_bytes: int


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise UsageError(f"a dataset key is {KEY_BYTES} bytes (AES-256), this one has {len(key)}")


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _read_full(handle: BinaryIO, count: int) -> bytes:
    """Read up to `count` bytes, looping over short reads (pipes, sockets)."""
    parts = []
    remaining = count
    while remaining:
        data = handle.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


class _HashingWriter:
    """Hashes and writes the ciphertext on one worker thread while the caller encrypts the next
    chunk (hashlib and file writes release the GIL): at most one chunk in flight, in order."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.count = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pox-hash")
        self._pending: Future[None] | None = None

    def _consume(self, data: bytes) -> None:
        self.digest.update(data)
        self.out.write(data)

    def write(self, data: bytes) -> None:
        self.count += len(data)
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._consume, data)

    def close(self) -> None:
        try:
            if self._pending is not None:
                self._pending.result()
        finally:
            self._pending = None
            self._pool.shutdown(wait=True)

    @property
    def checksum(self) -> str:
        return "0x" + self.digest.hexdigest()


def encrypt_stream(
    source: BinaryIO, out: BinaryIO, key: bytes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> CipherResult:
    """Encrypt `source` into `out` in the `pox-aes256gcm-v1` format."""
    _check_key(key)
    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise UsageError(f"chunk size must be 1 byte to {MAX_CHUNK_BYTES} bytes")
    aead = AESGCM(key)
    header = MAGIC + struct.pack(">I", chunk_bytes) + os.urandom(7)
    prefix = header[-7:]
    writer = _HashingWriter(out)
    try:
        writer.write(header)
        plaintext_bytes = 0
        index = 0
        current = _read_full(source, chunk_bytes)
        while True:
            following = _read_full(source, chunk_bytes) if len(current) == chunk_bytes else b""
            last = not following
            writer.write(aead.encrypt(_nonce(prefix, index, last), current, header))
            plaintext_bytes += len(current)
            if last:
                break
            index += 1
            if index >= _MAX_CHUNKS:
                raise UsageError("file too large for this chunk size (2^32 chunks)")
            current = following
    finally:
        writer.close()
    return CipherResult(POX_FORMAT, writer.checksum, plaintext_bytes, writer.count)


def decrypt_stream(
    source: BinaryIO, out: BinaryIO, key: bytes, *, name: str = "input"
) -> CipherResult:
    """Decrypt a `pox-aes256gcm-v1` stream; raises `DecryptionError` on any alteration.

    Plaintext of a chunk is written only after its tag verified; a caller that must not keep
    partial output on failure writes to a temporary file and renames it on success.
    """
    _check_key(key)
    digest = hashlib.sha256()
    header = _read_full(source, HEADER_BYTES)
    digest.update(header)
    if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
        raise DecryptionError(f"{name} is not a {POX_FORMAT} file (bad header)")
    (chunk_bytes,) = struct.unpack(">I", header[len(MAGIC) : len(MAGIC) + 4])
    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise DecryptionError(f"{name}: header declares an invalid chunk size {chunk_bytes}")
    prefix = header[-7:]
    aead = AESGCM(key)
    sealed_bytes = chunk_bytes + TAG_BYTES
    index = 0
    total = HEADER_BYTES
    plaintext_bytes = 0
    current = _read_full(source, sealed_bytes)
    while True:
        if len(current) < TAG_BYTES:
            raise DecryptionError(f"{name} is truncated (chunk {index} incomplete)")
        following = _read_full(source, sealed_bytes) if len(current) == sealed_bytes else b""
        last = not following
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), current, header)
        except InvalidTag:
            if last and len(current) == sealed_bytes:
                raise DecryptionError(
                    f"{name} is truncated or corrupt: chunk {index} is not the sealed last chunk"
                ) from None
            raise DecryptionError(
                f"{name}: chunk {index} failed authentication (altered, reordered or wrong key)"
            ) from None
        digest.update(current)
        total += len(current)
        out.write(plain)
        plaintext_bytes += len(plain)
        if last:
            break
        index += 1
        current = following
    return CipherResult(POX_FORMAT, "0x" + digest.hexdigest(), plaintext_bytes, total)


_CBC_BLOCK = 16
_CBC_READ = 1 << 20


def encrypt_iexec_stream(source: BinaryIO, out: BinaryIO, key: bytes) -> CipherResult:
    """iExec's dataset format: random IV, then AES-256-CBC with PKCS#7 padding."""
    _check_key(key)
    iv = os.urandom(_CBC_BLOCK)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    padder = padding.PKCS7(128).padder()
    writer = _HashingWriter(out)
    try:
        writer.write(iv)
        plaintext_bytes = 0
        while chunk := source.read(_CBC_READ):
            plaintext_bytes += len(chunk)
            writer.write(encryptor.update(padder.update(chunk)))
        writer.write(encryptor.update(padder.finalize()) + encryptor.finalize())
    finally:
        writer.close()
    return CipherResult(IEXEC_FORMAT, writer.checksum, plaintext_bytes, writer.count)


def decrypt_iexec_stream(
    source: BinaryIO, out: BinaryIO, key: bytes, *, name: str = "input"
) -> CipherResult:
    """Read iExec's format. CBC has no tag: check the ciphertext checksum against the
    registered one (the caller does, with the returned `checksum`) before trusting output."""
    _check_key(key)
    digest = hashlib.sha256()
    iv = _read_full(source, _CBC_BLOCK)
    digest.update(iv)
    if len(iv) != _CBC_BLOCK:
        raise DecryptionError(f"{name} is too short for {IEXEC_FORMAT} (no IV)")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    total = _CBC_BLOCK
    plaintext_bytes = 0
    while chunk := source.read(_CBC_READ):
        digest.update(chunk)
        total += len(chunk)
        plain = unpadder.update(decryptor.update(chunk))
        plaintext_bytes += len(plain)
        out.write(plain)
    if (total - _CBC_BLOCK) % _CBC_BLOCK or total == _CBC_BLOCK:
        raise DecryptionError(f"{name}: {IEXEC_FORMAT} ciphertext is not whole AES blocks")
    try:
        plain = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise DecryptionError(f"{name}: bad padding (wrong key or altered ciphertext)") from None
    plaintext_bytes += len(plain)
    out.write(plain)
    return CipherResult(IEXEC_FORMAT, "0x" + digest.hexdigest(), plaintext_bytes, total)


def sniff_format(head: bytes) -> str:
    """`pox-aes256gcm-v1` when the magic is there; otherwise the file can only be iExec's."""
    return POX_FORMAT if head.startswith(MAGIC) else IEXEC_FORMAT
