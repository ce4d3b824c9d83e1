"""The scheduler's side of broker-held enclave challenges, for the executor and for settlement.

With a key broker configured (`--pox-sms URL`), the executor asks the broker for a PoCo enclave
challenge per task instead of making keys on the host: the broker generates and keeps each
secp256k1 key, the host learns only the address (bound into the evidence of that job's record
and checked by PoCo in `contributeAndFinalize`). The task is the job attempt: its broker task id
is the record's binding task id (`0x` + SHA-256 of `<run-id>/<jobid>/<attempt>`), known when the
job ends, signed into its statement, and the one settlement later maps to the PoCo task of the
job's deal. The deadline is PoCo's final deadline (10x the default category's 3600 s) counted
from the job's end: settlement must contribute before it, as PoCo requires for the deal. A
session's opening binds the session's challenge, whose broker task id is SHA-256 of
`<run-id>/session/<i>`. Jobs dispatched to SLURM or Kubernetes get theirs when the head writes
their ticket (`dispatch.cluster`), under the same binding task ids.

The host keeps a key-less note `.pox/enclave-keys/<address>.sms` (broker URL, broker task id,
measurement of what ran the job) so that settlement can later obtain the key the only way the
broker allows: by attesting as that task's job.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from pox_executor.errors import PoxError
from pox_executor.sms import admin
from pox_executor.sms.challenges import TASK_ID, challenge_resource

ENCLAVE_KEYS_DIR = Path(".pox") / "enclave-keys"
# PoCo's final deadline is 10x the category's time reference; PoX's default category uses 3600 s.
DEFAULT_VALIDITY_S = 10 * 3600
SMS_TOKEN_ENV = "POX_SMS_TOKEN"


def broker_task_id(task: str) -> str:
    """The broker's 32-byte task id: a job's binding task id as is (already `0x` + 64 hex),
    else (a session's `<run-id>/session/<i>`) its SHA-256."""
    if TASK_ID.match(task):
        return task
    return "0x" + hashlib.sha256(task.encode("utf-8")).hexdigest()


class BrokerChallengeSource:
    """Makes enclave challenges on the broker; `source(task, measurement)` returns the address.

    `measurement`: what ran the task (a docker job's image), else the runtime's (`measurement`)."""

    def __init__(
        self,
        broker_url: str,
        token: str,
        workdir: Path,
        *,
        measurement: str,
        validity_s: int = DEFAULT_VALIDITY_S,
        policy: str | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.token = token
        self.workdir = workdir
        self.measurement = measurement
        self.validity_s = validity_s
        self.policy = policy

    def __call__(self, task: str, measurement: str | None = None) -> str:
        binding_task, task = task, broker_task_id(task)
        deadline = int(time.time()) + self.validity_s
        address = admin.create_challenge(
            self.broker_url, self.token, task, deadline, policy=self.policy
        )
        directory = self.workdir / ENCLAVE_KEYS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        note = {
            "broker_url": self.broker_url,
            "task_id": task,
            "binding_task": binding_task,
            "measurement": measurement or self.measurement,
            "deadline": deadline,
        }
        fd = os.open(directory / f"{address}.sms", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(note, handle)
        return address


def token_from(token_file: str | None) -> str:
    """The broker admin token: from `token_file`, else the POX_SMS_TOKEN environment variable."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PoxError(
                f"{token_file}: cannot read the key broker token ({exc.strerror})"
            ) from exc
    else:
        token = os.environ.get(SMS_TOKEN_ENV, "").strip()
    if not token:
        raise PoxError(
            "a key broker is configured but no admin token was given",
            hint=f"set --pox-sms-token-file FILE or the {SMS_TOKEN_ENV} environment variable",
        )
    return token


def release_challenge_key(workdir: Path, address: str) -> str | None:
    """The 0x-hex challenge key of a broker-held challenge, fetched by attesting as its job.

    None when `address` is not a broker-held challenge of this working directory. The evidence
    comes from this machine's TEE, or from the simulated producer (the broker releases to it only
    if its policy allows simulated evidence, and logs the release as simulated).
    """
    from pox_executor.enclave.producers import detect_producer
    from pox_executor.sms.client import fetch_resource

    path = workdir / ENCLAVE_KEYS_DIR / f"{address}.sms"
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PoxError(f"{path}: unreadable key-broker note ({exc})") from exc
    task = str(note["task_id"])
    producer = detect_producer("auto", measurement=str(note.get("measurement", "unmeasured")))
    key = fetch_resource(
        str(note["broker_url"]), challenge_resource(task), producer=producer, task_id=task
    )
    return key.decode("ascii").strip()
