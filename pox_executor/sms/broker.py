"""The key broker's state and the HTTP helpers its endpoints share.

This module owns the in-memory KBS sessions (nonce, attested TEE key, evidence, cached policy
verdicts; lost on restart, clients attest again), the `Broker` that ties them to the on-disk
store and the loaded resource policies, the release log, and the request helpers: RFC 7807
problem documents, JSON bodies (only `application/json`) and the admin bearer-token check.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from pox_executor.enclave.evidence import Evidence
from pox_executor.primitives import utc_now
from pox_executor.sms.policy import (
    PolicyError,
    ResourcePolicy,
    parse_resource_policy,
)
from pox_executor.sms.protocol import (
    SESSION_COOKIE,
    KbsProtocolError,
)
from pox_executor.sms.store import BrokerStore
from pox_executor.sms.uploads import DatasetOwners

log = logging.getLogger("pox.sms")

PROBLEM_BASE = "https://pox.dev/problems/sms/"
MAX_BODY_BYTES = 4 << 20  # DCAP collateral and SNP chains fit many times over
MAX_SECRET_BYTES = 1 << 20
SESSION_TTL_S = 300
MAX_SESSIONS = 20_000


@dataclass
class Session:
    """One KBS session: the challenge, then (after a good attestation) the attested key."""

    nonce: str
    tee: str
    hash_algorithm: str
    created: float
    attested: bool = False
    consumed: bool = False
    tee_pubkey: dict[str, Any] = field(default_factory=dict)
    evidence: Evidence | None = None
    report_data: bytes = b""
    task_id: str | None = None
    measurements: dict[str, str] = field(default_factory=dict)
    simulated: bool = False
    verdicts: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class BrokerConfig:
    state_dir: Path
    admin_token: str | None = None
    chain_rpc: str | None = None
    dataset_registry: str | None = None
    session_ttl_s: int = SESSION_TTL_S


class Broker:
    """The broker's state: the on-disk store plus in-memory sessions (lost on restart)."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.store = BrokerStore(config.state_dir)
        self.admin_token = self.store.admin_token(config.admin_token)
        self.owners = (
            DatasetOwners(config.chain_rpc, config.dataset_registry)
            if config.chain_rpc and config.dataset_registry
            else None
        )
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.policies: dict[str, ResourcePolicy] = {}
        for policy_id, document in self.store.policy_documents().items():
            try:
                self.policies[policy_id] = parse_resource_policy(policy_id, document)
            except PolicyError as exc:
                log.error("ignoring stored policy %s: %s", policy_id, exc)
        self.releases_path = self.config.state_dir / "releases.jsonl"

    # --- sessions ---------------------------------------------------------------------------

    def new_session(self, tee: str, algorithm: str) -> tuple[str, Session]:
        now = time.monotonic()
        while self.sessions:
            oldest_id, oldest = next(iter(self.sessions.items()))
            if (
                len(self.sessions) < MAX_SESSIONS
                and now - oldest.created < self.config.session_ttl_s
            ):
                break
            del self.sessions[oldest_id]
        session_id = secrets.token_urlsafe(24)
        nonce = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        session = Session(nonce=nonce, tee=tee, hash_algorithm=algorithm, created=now)
        self.sessions[session_id] = session
        return session_id, session

    def session_of(self, request: web.Request) -> Session | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        session = self.sessions.get(session_id)
        if session is None:
            return None
        if time.monotonic() - session.created >= self.config.session_ttl_s:
            del self.sessions[session_id]
            return None
        return session

    def record_release(self, resource: str, session: Session, policy_id: str) -> None:
        entry = {
            "time": utc_now(),
            "resource": resource,
            "policy": policy_id,
            "evidence_type": session.evidence.type if session.evidence else None,
            "measurements": session.measurements,
            "simulated": session.simulated,
            "task_id": session.task_id,
        }
        with open(self.releases_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
        if session.simulated:
            log.warning(
                "released %s to SIMULATED evidence (sim-report, measurement %s) under policy %s: "
                "no hardware vouches for this job",
                resource,
                session.measurements.get("measurement"),
                policy_id,
            )
        else:
            log.info(
                "released %s to %s evidence under policy %s",
                resource,
                entry["evidence_type"],
                policy_id,
            )


# --- helpers -------------------------------------------------------------------------------


def problem(status: int, kind: str, detail: str) -> web.Response:
    titles = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        500: "Internal Server Error",
    }
    body = {
        "type": PROBLEM_BASE + kind,
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/problem+json"
    )


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise KbsProtocolError(
            f"Content-Type must be application/json, got {request.content_type or 'none'!r}",
            status=415,
            problem="unsupported-media-type",
        )
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise KbsProtocolError(f"request body is not JSON ({exc})") from exc


def require_admin(broker: Broker, request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), broker.admin_token.encode()
    ):
        raise KbsProtocolError(
            "this admin endpoint needs 'Authorization: Bearer <admin token>'",
            status=401,
            problem="unauthorized",
        )


# --- KBS endpoints -------------------------------------------------------------------------
