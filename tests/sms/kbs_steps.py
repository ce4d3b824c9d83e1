"""The KBS protocol steps done by hand, so tests can send what a well-behaved client never would."""

from __future__ import annotations

import json
from typing import Any

from broker_process import http

from pox_executor.enclave.evidence import EvidenceProducer
from pox_executor.sms import jwe
from pox_executor.sms.protocol import KBS_PROTOCOL_VERSION, runtime_data_digest


class RawSession:
    """One session's cookie and nonce, plus the TEE key the test made for it."""

    def __init__(self, url: str, tee: str = "sample") -> None:
        self.url = url
        status, headers, body = http(
            "POST",
            f"{url}/kbs/v0/auth",
            json.dumps({"version": KBS_PROTOCOL_VERSION, "tee": tee, "extra-params": ""}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 200, body
        challenge = json.loads(body)
        self.nonce: str = challenge["nonce"]
        self.algorithm: str = challenge["extra-params"]["selected-hash-algorithm"]
        self.cookie = headers["Set-Cookie"].split(";", 1)[0]
        assert self.cookie.startswith("kbs-session-id=")
        self.key = jwe.generate_tee_key()

    def runtime_data(
        self, *, task_id: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"nonce": nonce or self.nonce, "tee-pubkey": self.key.public_jwk}
        if task_id is not None:
            data["pox-task"] = task_id
        return data

    def evidence_for(self, producer: EvidenceProducer, runtime: dict[str, Any]) -> dict[str, Any]:
        bound = dict(runtime, **{"additional-evidence": ""})
        return producer.produce(runtime_data_digest(bound, self.algorithm)).to_json()

    def attest(self, payload: Any, *, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        body = raw if raw is not None else json.dumps(payload).encode()
        status, _headers, reply = http(
            "POST",
            f"{self.url}/kbs/v0/attest",
            body,
            headers={"Content-Type": "application/json", "Cookie": self.cookie},
        )
        return status, json.loads(reply)

    def attest_with(
        self, producer: EvidenceProducer, *, task_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        runtime = self.runtime_data(task_id=task_id)
        evidence = self.evidence_for(producer, runtime)
        return self.attest(
            {
                "runtime-data": runtime,
                "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
            }
        )

    def resource(self, path: str) -> tuple[int, Any]:
        status, _headers, reply = http(
            "GET", f"{self.url}/kbs/v0/resource/{path}", headers={"Cookie": self.cookie}
        )
        document = json.loads(reply)
        if status == 200:
            return status, jwe.decrypt(document, self.key.private_key)
        return status, document
