"""The job's side of a confidential dataset: attest to the broker, get the key, decrypt into a
private memory-backed directory, and seal results for a beneficiary.

Where the plaintext goes: `$POX_MEMORY_DIR` when the runtime sets it (the `sim` backend's
sandbox sets `/run`, the docker backend a tmpfs mounted in the container: private to the job, it
vanishes with it), else `$POX_SHARED_MEMORY_DIR` (the unisolated `sim` backend makes a 0700
directory per job under `/dev/shm` and removes it after the job, even a killed one) or `/dev/shm`,
which are memory-backed but visible to the host's root (said on stderr). Never the working
directory. SIGTERM and SIGHUP end `open` through its clean-up, so the plaintext goes with it.
The ciphertext's checksum is compared with the manifest before the key is asked for, so a
swapped file gets nothing; the key itself stays in this process.

The enclave measurement presented to the broker is `$POX_ENCLAVE_MEASUREMENT`, set by the
runtime (the same value its statements carry), so a job cannot choose the image it claims to be
beyond what its backend's evidence supports (with `sim`, nothing is proven: see docs).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pox_executor.datasets.encryption import (
    IEXEC_FORMAT,
    POX_FORMAT,
    decrypt_iexec_stream,
    decrypt_stream,
    encrypt_stream,
    new_key,
)
from pox_executor.datasets.manifest import (
    DatasetManifest,
    manifest_path_for,
    read_manifest,
    write_manifest,
)
from pox_executor.errors import PoxError, UsageError
from pox_executor.primitives import sha256_file
from pox_executor.storage.unixfs import DEFAULT_PROFILE, get_profile, import_file

MEMORY_DIR_VARIABLE = "POX_MEMORY_DIR"
SHARED_MEMORY_DIR_VARIABLE = "POX_SHARED_MEMORY_DIR"
MEASUREMENT_VARIABLE = "POX_ENCLAVE_MEASUREMENT"
SEAL_ALGORITHM = "RSA-OAEP-256"


class DatasetAccessDenied(PoxError):
    """The broker refused this enclave the dataset's key (policy, evidence or ownership)."""


def memory_dir() -> tuple[Path, bool]:
    """(directory for plaintext, whether it is private to this job)."""
    explicit = os.environ.get(MEMORY_DIR_VARIABLE)
    if explicit:
        return Path(explicit), True
    return Path(os.environ.get(SHARED_MEMORY_DIR_VARIABLE) or "/dev/shm"), False


def _check_ciphertext(ciphertext: Path, manifest: DatasetManifest) -> None:
    actual = "0x" + sha256_file(ciphertext)
    if actual != manifest.checksum:
        raise PoxError(
            f"{ciphertext}: checksum {actual} differs from the registered {manifest.checksum}",
            hint="the ciphertext is not the registered dataset; nothing was decrypted",
        )


def fetch_dataset_key(manifest: DatasetManifest, broker_url: str) -> bytes:
    from pox_executor.sms.client import BrokerRefused, KbsClient

    measurement = os.environ.get(MEASUREMENT_VARIABLE, "unmeasured")
    try:
        client = KbsClient(broker_url, measurement=measurement)
        key = client.get_resource(manifest.key_resource)
    except BrokerRefused as exc:
        raise DatasetAccessDenied(
            f"the key broker refused the key of dataset {manifest.name} ({manifest.address}) "
            f"to this enclave (measurement {measurement}): {exc.detail or exc}",
            hint="the dataset's owner grants it to enclave measurements with `pox dataset grant`",
        ) from None
    if len(key) != 32:
        raise PoxError(f"the broker's key for {manifest.key_resource} is not an AES-256 key")
    return key


@contextmanager
def open_dataset(ciphertext: str | Path, broker_url: str) -> Iterator[Path]:
    """Decrypt the registered dataset at `ciphertext` (its manifest beside it) for the duration
    of the `with` block; yields the plaintext path in a private memory-backed directory."""
    source = Path(ciphertext)
    manifest = read_manifest(manifest_path_for(source))
    _check_ciphertext(source, manifest)
    key = fetch_dataset_key(manifest, broker_url)
    base, private = memory_dir()
    if not private:
        print(
            f"pox: warning: no private memory directory from the runtime; decrypting into {base}, "
            "which the host's root can read",
            file=sys.stderr,
        )
    folder = Path(tempfile.mkdtemp(prefix="pox-dataset-", dir=base))
    plaintext = folder / Path(manifest.name).name
    try:
        with open(source, "rb") as reader, open(plaintext, "xb") as out:
            if manifest.format == POX_FORMAT:
                decrypt_stream(reader, out, key, name=str(source))
            elif manifest.format == IEXEC_FORMAT:
                decrypt_iexec_stream(reader, out, key, name=str(source))
            else:
                raise UsageError(f"{source}: unknown dataset format {manifest.format!r}")
        yield plaintext
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _recipient_key(path: Path) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise UsageError(f"{path}: the beneficiary key must be RSA, 2048 bits or more")
    return key


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def seal_result(
    source: str | Path,
    recipient_pem: str | Path,
    out: str | Path,
    *,
    profile: str = DEFAULT_PROFILE,
) -> DatasetManifest:
    """Encrypt a result for its beneficiary: a fresh AES-256 key encrypts the file in the
    `pox-aes256gcm-v1` format, RSA-OAEP-256 wraps the key to the beneficiary's public key.
    Writes `out` and `out.json` (checksum, CID and the wrapped key)."""
    recipient_path = Path(recipient_pem)
    recipient = _recipient_key(recipient_path)
    target = Path(out)
    manifest_path = manifest_path_for(target)
    key = new_key()
    with open(source, "rb") as reader, open(target, "xb") as writer:
        result = encrypt_stream(reader, writer, key)
    spki = recipient.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    manifest = DatasetManifest(
        name=Path(source).name,
        format=POX_FORMAT,
        ciphertext=target.name,
        checksum=result.checksum,
        size=result.ciphertext_bytes,
        cid=import_file(target, get_profile(profile)).record(),
        recipient={
            "alg": SEAL_ALGORITHM,
            "spki_sha256": hashlib.sha256(spki).hexdigest(),
            "wrapped_key": base64.b64encode(recipient.encrypt(key, _oaep())).decode(),
        },
    )
    write_manifest(manifest_path, manifest)
    return manifest


def unseal_result(sealed: str | Path, identity_pem: str | Path, out: str | Path) -> Path:
    """The beneficiary's side: unwrap the key with the private key, decrypt to `out`."""
    source = Path(sealed)
    manifest = read_manifest(manifest_path_for(source))
    recipient = manifest.recipient
    if not isinstance(recipient, dict) or recipient.get("alg") != SEAL_ALGORITHM:
        raise UsageError(f"{source}: not a result sealed for a beneficiary")
    try:
        private = serialization.load_pem_private_key(Path(identity_pem).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{identity_pem}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise UsageError(f"{identity_pem}: not an RSA private key")
    try:
        key = private.decrypt(base64.b64decode(recipient["wrapped_key"]), _oaep())
    except ValueError:
        raise PoxError(f"{source}: sealed for another beneficiary (key unwrap failed)") from None
    _check_ciphertext(source, manifest)
    target = Path(out)
    if target.exists():
        raise UsageError(f"{target} already exists; PoX never overwrites it")
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(source, "rb") as reader, open(tmp, "wb") as writer:
            decrypt_stream(reader, writer, key, name=str(source))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class _Terminated(BaseException):
    """SIGTERM/SIGHUP while a dataset is open: unwinds through `open_dataset`'s clean-up."""


@contextmanager
def _terminate_through_cleanup() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception, so the plaintext is removed before exiting
    (the default action would end the process on the spot and leave it in memory-backed files).
    Exits 128 + signal, as a shell reports a job ended by it."""
    import signal

    def raise_terminated(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except _Terminated as exc:
        raise SystemExit(128 + int(exc.args[0])) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_with_dataset(ciphertext: str | Path, broker_url: str, command: list[str]) -> int:
    """`pox dataset open`: run `command` with the plaintext; `{}` in it becomes the path, and
    `POX_DATASET` / `POX_PRIVATE_DIR` name the plaintext and a private scratch directory."""
    import subprocess

    if not command:
        raise UsageError("pox dataset open: give the command to run after --")
    with _terminate_through_cleanup(), open_dataset(ciphertext, broker_url) as plaintext:
        argv = [str(plaintext) if part == "{}" else part for part in command]
        env = {
            **os.environ,
            "POX_DATASET": str(plaintext),
            "POX_PRIVATE_DIR": str(plaintext.parent),
        }
        return subprocess.run(argv, env=env).returncode
