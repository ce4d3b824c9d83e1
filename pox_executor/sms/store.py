"""The broker's state on disk: master key, secrets sealed at rest, policies, challenge keys.

This module owns the state directory of `pox sms serve`. The master key (32 random bytes,
`master.key`, created 0600 with O_EXCL on first start and never rewritten) seals every secret and
every enclave challenge key with AES-256-GCM; the associated data names what the value is, so a
sealed file moved to another name does not open. Every write is atomic (write, fsync, rename), so
a broker killed at any moment restarts with every acknowledged secret. Values never appear in
errors or logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pox_executor.errors import PoxError
from pox_executor.primitives import write_atomically

MASTER_KEY_FILE = "master.key"
ADMIN_TOKEN_FILE = "admin.token"
_MASTER_KEY_BYTES = 32


class StoreError(PoxError):
    """The broker's state directory is unusable or a sealed file does not open."""


class BrokerStore:
    """Sealed secrets, resource policies and challenge records under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name in ("secrets", "policies", "challenges"):
                (self.root / name).mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"{self.root}: cannot create the broker state directory ({exc})"
            ) from exc
        self._aead = AESGCM(self._master_key())

    # --- keys -----------------------------------------------------------------------------

    def _master_key(self) -> bytes:
        path = self.root / MASTER_KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._read_key(path)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the master key ({exc.strerror})") from exc
        key = secrets.token_bytes(_MASTER_KEY_BYTES)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        return key

    def _read_key(self, path: Path) -> bytes:
        info = path.stat()
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise StoreError(
                f"{path}: the master key is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):o}); expected 0600",
                hint=f"chmod 600 {path}",
            )
        key = path.read_bytes()
        if len(key) != _MASTER_KEY_BYTES:
            raise StoreError(f"{path}: expected {_MASTER_KEY_BYTES} bytes, got {len(key)}")
        return key

    def admin_token(self, given: str | None = None) -> str:
        """The admin bearer token: `given`, else the one in admin.token (made 0600 if missing)."""
        if given:
            return given
        path = self.root / ADMIN_TOKEN_FILE
        if path.exists():
            return path.read_text(encoding="ascii").strip()
        token = secrets.token_urlsafe(32)
        write_atomically(path, (token + "\n").encode("ascii"), mode=0o600)
        return token

    # --- sealing ----------------------------------------------------------------------------

    def seal(self, plaintext: bytes, label: str) -> dict[str, str]:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext, label.encode("utf-8"))
        return {
            "alg": "A256GCM",
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "sealed": base64.b64encode(sealed).decode("ascii"),
        }

    def unseal(self, box: Any, label: str) -> bytes:
        try:
            nonce = base64.b64decode(box["nonce"], validate=True)
            sealed = base64.b64decode(box["sealed"], validate=True)
            return self._aead.decrypt(nonce, sealed, label.encode("utf-8"))
        except (KeyError, TypeError, binascii.Error, InvalidTag, ValueError) as exc:
            raise StoreError(
                f"sealed value for {label!r} does not open under this master key"
            ) from exc

    # --- secrets ----------------------------------------------------------------------------

    def _secret_path(self, resource: str) -> Path:
        return self.root / "secrets" / (hashlib.sha256(resource.encode()).hexdigest() + ".json")

    def put_secret(self, resource: str, value: bytes) -> None:
        record = {"resource": resource, "box": self.seal(value, "secret:" + resource)}
        write_atomically(self._secret_path(resource), json.dumps(record).encode(), mode=0o600)

    def get_secret(self, resource: str) -> bytes | None:
        record = self._read_json(self._secret_path(resource))
        if record is None:
            return None
        return self.unseal(record.get("box"), "secret:" + resource)

    def has_secret(self, resource: str) -> bool:
        return self._secret_path(resource).exists()

    def secret_names(self) -> list[str]:
        names = []
        for path in sorted((self.root / "secrets").glob("*.json")):
            record = self._read_json(path)
            if record is not None:
                names.append(str(record.get("resource")))
        return sorted(names)

    # --- policies ---------------------------------------------------------------------------

    def put_policy(self, policy_id: str, document: Any) -> None:
        path = self.root / "policies" / f"{policy_id}.json"
        write_atomically(path, json.dumps(document, indent=2).encode(), mode=0o600)

    def delete_policy(self, policy_id: str) -> bool:
        try:
            (self.root / "policies" / f"{policy_id}.json").unlink()
        except FileNotFoundError:
            return False
        return True

    def policy_documents(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for path in sorted((self.root / "policies").glob("*.json")):
            document = self._read_json(path)
            if document is not None:
                result[path.stem] = document
        return result

    # --- enclave challenge records ----------------------------------------------------------

    def challenge_path(self, task_id: str) -> Path:
        return self.root / "challenges" / f"{task_id}.json"

    def put_challenge(self, task_id: str, record: dict[str, Any]) -> None:
        write_atomically(self.challenge_path(task_id), json.dumps(record).encode(), mode=0o600)

    def get_challenge(self, task_id: str) -> dict[str, Any] | None:
        record = self._read_json(self.challenge_path(task_id))
        return record if isinstance(record, dict) else None

    def challenge_records(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted((self.root / "challenges").glob("*.json")):
            record = self._read_json(path)
            if record is not None:
                records.append(record)
        return records

    def _read_json(self, path: Path) -> Any:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read ({exc.strerror})") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StoreError(f"{path}: not JSON ({exc})") from exc
