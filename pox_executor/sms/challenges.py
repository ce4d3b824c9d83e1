"""Per-task enclave challenge keys, as iExec's SMS keeps them: made and held by the broker.

This module owns the lifecycle of a PoCo enclave challenge: the scheduler asks for one per task
(task id and the deal's final deadline) and gets only its address, the value PoCo checks in
`contributeAndFinalize`; the secp256k1 private key is sealed in the broker's store; it is released
(as resource `pox-task/<task id>/enclave-challenge`) only to a job that attested with that task id
in its runtime data; at the deadline the sealed key is deleted and a tombstone remains, so a late
request is told the challenge expired rather than that it never existed.
"""

from __future__ import annotations

import re
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pox_executor.errors import PoxError
from pox_executor.provenance.recorder import ethereum_address
from pox_executor.sms.store import BrokerStore

CHALLENGE_REPOSITORY = "pox-task"
CHALLENGE_TAG = "enclave-challenge"
TASK_ID = re.compile(r"^0x[0-9a-f]{64}$")


class ChallengeError(PoxError):
    """An enclave challenge request is malformed, unknown or expired."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def challenge_resource(task_id: str) -> str:
    return f"{CHALLENGE_REPOSITORY}/{task_id}/{CHALLENGE_TAG}"


def check_task_id(value: Any, where: str = "task_id") -> str:
    if not isinstance(value, str) or not TASK_ID.match(value.lower()):
        raise ChallengeError(
            f"{where}: expected a PoCo task id (0x followed by 64 hex digits)", status=400
        )
    return value.lower()


def create_challenge(
    store: BrokerStore,
    task_id: Any,
    deadline_s: Any,
    *,
    policy_id: str | None,
    now_s: float | None = None,
) -> dict[str, Any]:
    """The challenge of `task_id` (made on first request); returns its public record."""
    task = check_task_id(task_id)
    now = time.time() if now_s is None else now_s
    if not isinstance(deadline_s, int) or isinstance(deadline_s, bool) or deadline_s <= now:
        raise ChallengeError(
            f"deadline: expected a Unix time in the future (now {int(now)}), got {deadline_s!r}",
            status=400,
        )
    existing = store.get_challenge(task)
    if existing is not None:
        if existing.get("deleted"):
            raise ChallengeError(
                f"task {task}: its enclave challenge expired at {existing.get('deadline')} and "
                "was deleted; a task gets one challenge only",
                status=409,
            )
        return public_record(existing)
    key = ec.generate_private_key(ec.SECP256K1())
    secret = key.private_numbers().private_value.to_bytes(32, "big")
    record = {
        "task_id": task,
        "address": ethereum_address(key.public_key()),
        "deadline": deadline_s,
        "policy": policy_id,
        "created_at": int(now),
        "box": store.seal(secret, "challenge:" + task),
    }
    store.put_challenge(task, record)
    return public_record(record)


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """What the scheduler may see: never the key."""
    return {
        "task_id": record["task_id"],
        "address": record["address"],
        "deadline": record["deadline"],
        "policy": record.get("policy"),
        "deleted": bool(record.get("deleted", False)),
    }


def challenge_key(store: BrokerStore, task_id: str, *, now_s: float | None = None) -> bytes:
    """The sealed private key of a live challenge (32 bytes); ChallengeError when there is none."""
    task = check_task_id(task_id)
    now = time.time() if now_s is None else now_s
    record = store.get_challenge(task)
    if record is None:
        raise ChallengeError(f"task {task}: no enclave challenge was made", status=404)
    if record.get("deleted") or now >= int(record["deadline"]):
        if not record.get("deleted"):
            delete_challenge(store, record)
        raise ChallengeError(
            f"task {task}: the enclave challenge expired at deadline {record['deadline']} and "
            "was deleted",
            status=403,
        )
    return store.unseal(record["box"], "challenge:" + task)


def delete_challenge(store: BrokerStore, record: dict[str, Any]) -> None:
    tombstone = {k: v for k, v in record.items() if k != "box"}
    tombstone["deleted"] = True
    store.put_challenge(str(record["task_id"]), tombstone)


def sweep_expired(store: BrokerStore, *, now_s: float | None = None) -> list[str]:
    """Delete the keys of every challenge past its deadline; returns their task ids."""
    now = time.time() if now_s is None else now_s
    deleted = []
    for record in store.challenge_records():
        if not record.get("deleted") and now >= int(record.get("deadline", 0)):
            delete_challenge(store, record)
            deleted.append(str(record["task_id"]))
    return deleted
