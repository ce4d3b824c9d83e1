"""The guest side of the key broker: attest with TEE evidence, fetch a resource, decrypt its JWE.

This module owns what a job running in an enclave calls to get a secret from `pox sms serve` (or
any Trustee KBS 0.4.0): `fetch_resource` for one resource, `KbsClient` to fetch several over one
attested session. The TEE key pair is made here, inside the job, and only its public JWK leaves;
the evidence comes from a producer of `pox_executor.enclave.producers` (SGX via Gramine, TDX/SNP
via configfs-tsm, or the honestly labelled `sim` producer, whose evidence a broker refuses unless
the resource's policy explicitly allows simulated evidence). Standard library HTTP only, so it
runs in minimal enclave images that have `cryptography` and `rfc8785`.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from pox_executor.enclave.evidence import EvidenceProducer
from pox_executor.errors import PoxError
from pox_executor.sms import jwe
from pox_executor.sms.protocol import (
    ATTEST_PATH,
    AUTH_PATH,
    EVIDENCE_TEES,
    KBS_PROTOCOL_VERSION,
    RESOURCE_PREFIX,
    RUNTIME_TASK_FIELD,
    SESSION_COOKIE,
    UNKNOWN_SESSION,
    check_resource_path,
    hash_algorithm_of,
    runtime_data_digest,
)

__all__ = ["BrokerRefused", "KbsClient", "fetch_resource"]

_MAX_RESPONSE_BYTES = 64 << 20


class BrokerRefused(PoxError):
    """The broker answered with an error; `status` and `problem` come from its RFC 7807 body."""

    def __init__(self, message: str, *, status: int, problem: str, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem
        self.detail = detail


class _Transient(PoxError):
    """The broker could not be reached (connection refused or reset): worth retrying."""


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    cookies: dict[str, str]


class KbsClient:
    """One attested KBS session: `attest()` once, then `get_resource(path)` as often as needed.

    `producer` asks the TEE for evidence (None: detect the real TEE, else `sim`, labelled as
    such). `task_id` (a PoCo task id) is bound into the runtime data so the broker can release
    that task's enclave challenge key to this job only.
    """

    def __init__(
        self,
        broker_url: str,
        *,
        producer: EvidenceProducer | None = None,
        measurement: str = "unmeasured",
        task_id: str | None = None,
        key_algorithm: Literal["ECDH-ES+A256KW", "RSA-OAEP-256"] = "ECDH-ES+A256KW",
        timeout_s: float = 30.0,
        retry_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(broker_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PoxError(
                f"broker URL {broker_url!r}: expected http://HOST:PORT or https://HOST:PORT"
            )
        self.broker_url = broker_url
        self._parsed = parsed
        self._base_path = parsed.path.rstrip("/")
        if producer is None:
            from pox_executor.enclave.producers import detect_producer

            producer = detect_producer("auto", measurement=measurement)
        self.producer = producer
        tee = EVIDENCE_TEES.get(producer.evidence_type)
        if tee is None:
            raise PoxError(f"evidence type {producer.evidence_type!r} has no KBS tee name")
        self.tee = tee
        self.task_id = task_id
        self.key_algorithm = key_algorithm
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.ssl_context = ssl_context
        self.simulated = producer.evidence_type == "sim-report"
        self.token: str | None = None
        self._session: str | None = None
        self._key: jwe.TeeKeyPair | None = None

    # --- protocol steps -----------------------------------------------------------------------

    def attest(self) -> str:
        """Run `/auth` then `/attest`; returns the broker's attestation token."""
        request = {"version": KBS_PROTOCOL_VERSION, "tee": self.tee, "extra-params": ""}
        reply = self._request("POST", AUTH_PATH, request)
        challenge = _json(reply.body, "challenge")
        session = reply.cookies.get(SESSION_COOKIE)
        nonce = challenge.get("nonce") if isinstance(challenge, dict) else None
        if not session or not isinstance(nonce, str):
            raise PoxError(f"{self.broker_url}: /auth answered without a nonce or session cookie")
        self._session = session
        algorithm = hash_algorithm_of(challenge.get("extra-params"))
        key = jwe.generate_tee_key(self.key_algorithm)
        additional_evidence = ""
        runtime_data: dict[str, Any] = {
            "nonce": nonce,
            "tee-pubkey": key.public_jwk,
        }
        if self.task_id is not None:
            runtime_data[RUNTIME_TASK_FIELD] = self.task_id
        bound = dict(runtime_data, **{"additional-evidence": additional_evidence})
        evidence = self.producer.produce(runtime_data_digest(bound, algorithm))
        attestation = {
            "runtime-data": runtime_data,
            "tee-evidence": {
                "primary_evidence": evidence.to_json(),
                "additional_evidence": additional_evidence,
            },
        }
        try:
            reply = self._request("POST", ATTEST_PATH, attestation)
        except BrokerRefused as exc:
            if exc.status == 401 and exc.problem.endswith("/" + UNKNOWN_SESSION):
                raise _Transient(str(exc)) from exc  # the broker restarted between the steps
            raise
        token = _json(reply.body, "attestation token")
        if not isinstance(token, dict) or not isinstance(token.get("token"), str):
            raise PoxError(f"{self.broker_url}: /attest answered without a token")
        self._key = key
        self.token = str(token["token"])
        return self.token

    def get_resource(self, path: str) -> bytes:
        """The plaintext of resource `repository/type/tag` (attests first if needed).

        A broker that is briefly unreachable (restarting) is retried for `retry_s` seconds; a
        session it no longer knows (401 after a restart or expiry) is attested afresh once per
        attempt. Refusals (403, 404, a 401 from attestation itself) are raised at once.
        """
        clean = check_resource_path(path)
        deadline = time.monotonic() + self.retry_s
        delay = 0.05
        while True:
            try:
                return self._get_once(clean)
            except _Transient as exc:
                if time.monotonic() + delay > deadline:
                    raise PoxError(str(exc)) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _get_once(self, clean: str) -> bytes:
        if self._key is None:
            self.attest()
        assert self._key is not None
        try:
            reply = self._request("GET", RESOURCE_PREFIX + clean, None)
        except BrokerRefused as exc:
            if exc.status != 401:
                raise
            # the broker forgot the session (restart, expiry): attest again, then retry once
            self._key = None
            self.attest()
            assert self._key is not None
            reply = self._request("GET", RESOURCE_PREFIX + clean, None)
        document = _json(reply.body, f"resource {clean}")
        return jwe.decrypt(document, self._key.private_key)

    # --- HTTP ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: Any) -> _Reply:
        host = self._parsed.hostname or ""
        port = self._parsed.port
        connection: http.client.HTTPConnection
        if self._parsed.scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout_s, context=self.ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        headers = {"Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._session is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={self._session}"
        try:
            connection.request(method, self._base_path + path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read(_MAX_RESPONSE_BYTES + 1)
            cookies = _cookies(response.headers.get_all("Set-Cookie") or [])
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(
                f"cannot reach the key broker at {self.broker_url} ({method} {path}): {exc}"
            ) from exc
        finally:
            connection.close()
        if len(data) > _MAX_RESPONSE_BYTES:
            raise PoxError(f"{self.broker_url}{path}: response larger than {_MAX_RESPONSE_BYTES}")
        if response.status != 200:
            raise _refusal(response.status, data, method, path)
        return _Reply(response.status, data, cookies)


def fetch_resource(
    broker_url: str,
    path: str,
    *,
    producer: EvidenceProducer | None = None,
    measurement: str = "unmeasured",
    task_id: str | None = None,
    key_algorithm: Literal["ECDH-ES+A256KW", "RSA-OAEP-256"] = "ECDH-ES+A256KW",
    timeout_s: float = 30.0,
    retry_s: float = 10.0,
) -> bytes:
    """Attest to the broker at `broker_url` and return the plaintext of resource `path`.

    `path` is `repository/type/tag`. `producer` defaults to the real TEE of this machine, or
    the honestly labelled `sim` producer (for `measurement`) when there is none. Raises
    BrokerRefused with the broker's status (401 not attested, 403 policy denies, 404 unknown).
    """
    client = KbsClient(
        broker_url,
        producer=producer,
        measurement=measurement,
        task_id=task_id,
        key_algorithm=key_algorithm,
        timeout_s=timeout_s,
        retry_s=retry_s,
    )
    return client.get_resource(path)


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise PoxError(f"key broker: the {what} is not JSON ({exc})") from exc


def _cookies(headers: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in headers:
        first = header.split(";", 1)[0]
        name, _, value = first.partition("=")
        if name.strip():
            found[name.strip()] = value.strip()
    return found


def _refusal(status: int, data: bytes, method: str, path: str) -> BrokerRefused:
    problem, detail = "about:blank", data[:300].decode("utf-8", errors="replace")
    try:
        document = json.loads(data)
        if isinstance(document, dict):
            problem = str(document.get("type", problem))
            detail = str(document.get("detail", detail))
    except ValueError:
        pass
    return BrokerRefused(
        f"key broker refused {method} {path} with {status}: {detail}",
        status=status,
        problem=problem,
        detail=detail,
    )
