"""`pox sms serve`: the key broker as an aiohttp service (KBS 0.4.0 plus PoX's admin and SMS API).

This module owns the HTTP surface and the session state. KBS: `POST /kbs/v0/auth` (nonce and a
`kbs-session-id` cookie), `POST /kbs/v0/attest` (evidence verified by PoX's pipeline, bound to
the runtime data), `GET /kbs/v0/resource/<repository>/<type>/<tag>` (a flattened JWE to the
attested TEE key, after the resource policy accepts the evidence). PoX: `PUT /pox/v0/secrets/...`
(admin token or an owner's EIP-191 signature), `PUT|GET|DELETE /pox/v0/policies/<id>` and
`POST /pox/v0/challenges` (admin token). Every error is an RFC 7807 problem document with 400,
401, 403, 404, 405, 409, 413 or 415; bad input never yields a 500. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import Policy, verify_evidence
from pox_executor.errors import EvidenceError, PoxError
from pox_executor.primitives import utc_now
from pox_executor.sms import jwe
from pox_executor.sms.challenges import (
    CHALLENGE_REPOSITORY,
    CHALLENGE_TAG,
    ChallengeError,
    challenge_key,
    challenge_resource,
    check_task_id,
    create_challenge,
    sweep_expired,
)
from pox_executor.sms.policy import (
    PolicyError,
    ResourcePolicy,
    check_policy_id,
    parse_resource_policy,
)
from pox_executor.sms.protocol import (
    ATTEST_PATH,
    AUTH_PATH,
    KBS_PROTOCOL_VERSION,
    RUNTIME_TASK_FIELD,
    SELECTED_HASH_ALGORITHM,
    SESSION_COOKIE,
    TEE_EVIDENCE_TYPES,
    UNKNOWN_SESSION,
    KbsProtocolError,
    check_resource_path,
    runtime_data_digest,
    select_hash_algorithm,
)
from pox_executor.sms.store import BrokerStore
from pox_executor.sms.uploads import DatasetOwners, UploadRefused, authorise_upload

log = logging.getLogger("pox.sms")

PROBLEM_BASE = "https://pox.dev/problems/sms/"
MAX_BODY_BYTES = 4 << 20  # DCAP collateral and SNP chains fit many times over
MAX_SECRET_BYTES = 1 << 20
SESSION_TTL_S = 300
MAX_SESSIONS = 20_000
_SWEEP_INTERVAL_S = 1.0


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
    except (ValueError, UnicodeDecodeError) as exc:
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


async def handle_auth(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise KbsProtocolError(
            "KBS Request: expected a JSON object", status=401, problem="unauthorized"
        )
    version = body.get("version")
    if version != KBS_PROTOCOL_VERSION:
        raise KbsProtocolError(
            f"KBS Client Protocol Version Mismatch: expect ={KBS_PROTOCOL_VERSION} while the "
            f"request is {version!r}",
            status=401,
            problem="protocol-version",
        )
    tee = body.get("tee")
    if tee not in TEE_EVIDENCE_TYPES:
        raise KbsProtocolError(
            f"tee: expected one of {', '.join(TEE_EVIDENCE_TYPES)}, got {tee!r}",
            status=401,
            problem="unsupported-tee",
        )
    algorithm = select_hash_algorithm(body.get("extra-params"))
    session_id, session = broker.new_session(str(tee), algorithm)
    response = web.json_response(
        {"nonce": session.nonce, "extra-params": {SELECTED_HASH_ALGORITHM: algorithm}}
    )
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=broker.config.session_ttl_s, httponly=True, path="/kbs"
    )
    return response


async def handle_attest(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    session = broker.session_of(request)
    if session is None:
        raise KbsProtocolError(
            "no KBS session: send POST /kbs/v0/auth first and present its kbs-session-id cookie "
            "(sessions expire and do not survive a broker restart)",
            status=401,
            problem=UNKNOWN_SESSION,
        )
    body = await read_json(request)
    if session.consumed:
        raise KbsProtocolError(
            "this session's nonce was already used: a challenge is answered once; start again "
            "with POST /kbs/v0/auth",
            status=401,
            problem="replayed-nonce",
        )
    if not isinstance(body, dict):
        raise KbsProtocolError(
            "Attestation: expected a JSON object", status=401, problem="unauthorized"
        )
    runtime = body.get("runtime-data")
    if not isinstance(runtime, dict):
        raise KbsProtocolError(
            "Attestation: field 'runtime-data' must be an object with nonce and tee-pubkey",
            status=401,
            problem="unauthorized",
        )
    if not isinstance(runtime.get("nonce"), str) or not hmac.compare_digest(
        str(runtime.get("nonce")).encode(), session.nonce.encode()
    ):
        raise KbsProtocolError(
            "the nonce in runtime-data is not the nonce of this session's challenge",
            status=401,
            problem="wrong-nonce",
        )
    # The nonce is spent from here on, whether the evidence passes or not.
    session.consumed = True
    tee_pubkey = runtime.get("tee-pubkey")
    try:
        jwe.public_key_from_jwk(tee_pubkey)
    except jwe.JweError as exc:
        raise KbsProtocolError(str(exc), status=401, problem="unauthorized") from exc
    task_id = runtime.get(RUNTIME_TASK_FIELD)
    if task_id is not None:
        try:
            task_id = check_task_id(task_id, f"runtime-data.{RUNTIME_TASK_FIELD}")
        except ChallengeError as exc:
            raise KbsProtocolError(str(exc), status=401, problem="unauthorized") from exc
    tee_evidence = body.get("tee-evidence")
    if not isinstance(tee_evidence, dict) or "primary_evidence" not in tee_evidence:
        raise KbsProtocolError(
            "Attestation: no evidence (field 'tee-evidence.primary_evidence' is missing)",
            status=401,
            problem="no-evidence",
        )
    additional = tee_evidence.get("additional_evidence", "")
    if not isinstance(additional, str):
        raise KbsProtocolError(
            "tee-evidence.additional_evidence must be a JSON string",
            status=401,
            problem="unauthorized",
        )
    try:
        evidence = Evidence.from_json(tee_evidence["primary_evidence"], where="primary_evidence")
    except EvidenceError as exc:
        raise KbsProtocolError(str(exc), status=401, problem="bad-evidence") from exc
    if evidence.type != TEE_EVIDENCE_TYPES[session.tee]:
        raise KbsProtocolError(
            f"the session was opened for tee {session.tee!r} but the evidence is {evidence.type}",
            status=401,
            problem="bad-evidence",
        )
    bound: dict[str, Any] = {
        "nonce": session.nonce,
        "tee-pubkey": tee_pubkey,
        "additional-evidence": additional,
    }
    if task_id is not None:
        bound[RUNTIME_TASK_FIELD] = task_id
    expected = runtime_data_digest(bound, session.hash_algorithm)
    # Authenticity, freshness and binding here; measurements, TCB and debug per resource.
    try:
        report = verify_evidence(
            evidence,
            policy=Policy(allow_debug=True, source="<kbs attest>"),
            expected_report_data=expected,
            allow_simulated=True,
        )
    except EvidenceError as exc:
        raise KbsProtocolError(
            f"evidence rejected: {exc}", status=401, problem="bad-evidence"
        ) from exc
    if not report.ok:
        reasons = "; ".join(str(f) for f in report.failures)
        raise KbsProtocolError(
            f"{evidence.type} evidence rejected: {reasons}", status=401, problem="bad-evidence"
        )
    session.attested = True
    session.tee_pubkey = dict(tee_pubkey) if isinstance(tee_pubkey, dict) else {}
    session.evidence = evidence
    session.report_data = expected
    session.task_id = task_id
    session.measurements = dict(report.measurements)
    session.simulated = report.simulated
    token = {
        "tee": session.tee,
        "evidence_type": evidence.type,
        "measurements": report.measurements,
        "simulated": report.simulated,
        "tcb_status": report.tcb_status,
        "task_id": task_id,
        "warnings": list(report.warnings),
    }
    # An unsigned claims summary: the session cookie, not this token, authorises resource reads.
    return web.json_response(
        {"token": base64.urlsafe_b64encode(json.dumps(token).encode()).decode()}
    )


async def handle_resource(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    session = broker.session_of(request)
    if session is None or not session.attested or session.evidence is None:
        raise KbsProtocolError(
            "not attested: run POST /kbs/v0/auth and /kbs/v0/attest first",
            status=401,
            problem=UNKNOWN_SESSION,
        )
    resource = check_resource_path(request.match_info["path"])
    repository, kind, tag = resource.split("/")
    if repository == CHALLENGE_REPOSITORY and tag == CHALLENGE_TAG:
        return release_challenge(broker, session, resource, kind)
    policy_id = authorise_release(broker, session, resource, broker.policies.values())
    try:
        value = broker.store.get_secret(resource)
    except PoxError as exc:
        log.error("cannot open %s: %s", resource, exc)
        raise KbsProtocolError(
            f"resource {resource} cannot be opened", status=404, problem="not-found"
        ) from exc
    if value is None:
        raise KbsProtocolError(f"no resource {resource}", status=404, problem="not-found")
    broker.record_release(resource, session, policy_id)
    return web.json_response(jwe.encrypt(value, session.tee_pubkey))


def authorise_release(broker: Broker, session: Session, resource: str, policies: Any) -> str:
    """The id of a policy that releases `resource` to this session, or a 403 naming the reasons."""
    assert session.evidence is not None
    reasons: list[str] = []
    for policy in policies:
        if not policy.covers(resource):
            continue
        verdict = session.verdicts.get(policy.policy_id)
        if verdict is None:
            try:
                report = policy.evaluate(session.evidence, session.report_data)
                verdict = [str(f) for f in report.failures]
            except EvidenceError as exc:
                verdict = [str(exc)]
            session.verdicts[policy.policy_id] = verdict
        if not verdict:
            return str(policy.policy_id)
        reasons.append(f"policy {policy.policy_id}: " + "; ".join(verdict))
    if not reasons:
        raise KbsProtocolError(
            f"no policy releases {resource} (deny by default)", status=403, problem="policy-denied"
        )
    raise KbsProtocolError(
        f"{resource} denied: " + " | ".join(reasons), status=403, problem="policy-denied"
    )


def release_challenge(
    broker: Broker, session: Session, resource: str, task_id: str
) -> web.Response:
    try:
        task = check_task_id(task_id, "resource type")
    except ChallengeError as exc:
        raise KbsProtocolError(str(exc), status=404, problem="not-found") from exc
    if session.task_id != task:
        raise KbsProtocolError(
            f"{resource}: this job attested for task {session.task_id or '(none)'}, not {task}; "
            "a challenge key goes only to the attested job of its own task",
            status=403,
            problem="policy-denied",
        )
    record = broker.store.get_challenge(task)
    if record is None:
        raise KbsProtocolError(
            f"no enclave challenge for task {task}", status=404, problem="not-found"
        )
    policy_id = record.get("policy")
    candidates = (
        [broker.policies[policy_id]]
        if isinstance(policy_id, str) and policy_id in broker.policies
        else list(broker.policies.values())
    )
    if isinstance(policy_id, str) and policy_id not in broker.policies:
        raise KbsProtocolError(
            f"{resource}: the task's policy {policy_id!r} does not exist",
            status=403,
            problem="policy-denied",
        )
    released_by = authorise_release(broker, session, resource, candidates)
    try:
        secret = challenge_key(broker.store, task)
    except ChallengeError as exc:
        raise KbsProtocolError(
            str(exc),
            status=exc.status,
            problem="challenge-expired" if exc.status == 403 else "not-found",
        ) from exc
    broker.record_release(resource, session, released_by)
    return web.json_response(jwe.encrypt(("0x" + secret.hex()).encode("ascii"), session.tee_pubkey))


# --- PoX endpoints -------------------------------------------------------------------------


async def handle_put_secret(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    resource = check_resource_path(request.match_info["path"])
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise KbsProtocolError('secret upload: expected {"value": <base64>, ...}')
    try:
        value = base64.b64decode(body["value"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KbsProtocolError(f"secret upload: field 'value' is not base64 ({exc})") from exc
    if len(value) > MAX_SECRET_BYTES:
        raise KbsProtocolError(
            f"secret upload: value larger than {MAX_SECRET_BYTES} bytes",
            status=413,
            problem="too-large",
        )
    if resource.split("/")[0] == CHALLENGE_REPOSITORY:
        raise KbsProtocolError(
            "the pox-task repository holds broker-made challenge keys; it takes no uploads",
            status=403,
            problem="forbidden",
        )
    if "signature" in body:
        try:
            uploader = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: authorise_upload(
                    resource,
                    value,
                    signer=body.get("signer"),
                    signature=body.get("signature"),
                    expires_s=body.get("expires"),
                    owners=broker.owners,
                ),
            )
        except UploadRefused as exc:
            raise KbsProtocolError(str(exc), status=exc.status, problem="upload-refused") from exc
    else:
        require_admin(broker, request)
        uploader = "admin"
    existing = broker.store.get_secret(resource)
    if existing is not None and existing != value and not body.get("replace", False):
        raise KbsProtocolError(
            f'{resource} already holds a different value; send "replace": true to overwrite',
            status=409,
            problem="conflict",
        )
    broker.store.put_secret(resource, value)
    log.info("stored secret %s (%d bytes) from %s", resource, len(value), uploader)
    return web.json_response({"resource": resource, "uploader": uploader, "size_bytes": len(value)})


async def handle_put_policy(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    require_admin(broker, request)
    try:
        policy_id = check_policy_id(request.match_info["policy_id"])
    except PolicyError as exc:
        raise KbsProtocolError(str(exc), status=404, problem="not-found") from exc
    document = await read_json(request)
    try:
        policy = parse_resource_policy(policy_id, document)
    except PolicyError as exc:
        raise KbsProtocolError(str(exc), problem="bad-policy") from exc
    broker.store.put_policy(policy_id, document)
    broker.policies[policy_id] = policy
    for session in broker.sessions.values():
        session.verdicts.pop(policy_id, None)
    log.info("policy %s set for %s", policy_id, ", ".join(policy.resources))
    return web.json_response({"policy": policy_id, "resources": list(policy.resources)})


async def handle_get_policies(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    require_admin(broker, request)
    return web.json_response({pid: dict(p.document) for pid, p in broker.policies.items()})


async def handle_delete_policy(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    require_admin(broker, request)
    policy_id = request.match_info["policy_id"]
    if policy_id not in broker.policies:
        raise KbsProtocolError(f"no policy {policy_id!r}", status=404, problem="not-found")
    broker.store.delete_policy(policy_id)
    del broker.policies[policy_id]
    for session in broker.sessions.values():
        session.verdicts.pop(policy_id, None)
    return web.json_response({"deleted": policy_id})


async def handle_create_challenge(request: web.Request) -> web.Response:
    broker: Broker = request.app["broker"]
    require_admin(broker, request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise KbsProtocolError("challenge request: expected a JSON object")
    policy_id = body.get("policy")
    if policy_id is not None and (
        not isinstance(policy_id, str) or policy_id not in broker.policies
    ):
        raise KbsProtocolError(
            f"policy: no policy {policy_id!r} on this broker", problem="bad-policy"
        )
    try:
        record = create_challenge(
            broker.store,
            body.get("task_id"),
            body.get("deadline"),
            policy_id=policy_id,
        )
    except ChallengeError as exc:
        raise KbsProtocolError(str(exc), status=exc.status, problem="bad-challenge") from exc
    log.info(
        "enclave challenge %s for task %s until %s",
        record["address"],
        record["task_id"],
        record["deadline"],
    )
    return web.json_response(dict(record, resource=challenge_resource(record["task_id"])))


# --- application ---------------------------------------------------------------------------


@web.middleware
async def problems_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except KbsProtocolError as exc:
        return problem(exc.status, exc.problem, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "too-large", f"request body larger than {MAX_BODY_BYTES} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, "http-" + str(exc.status), exc.reason)
    except PoxError as exc:
        log.error("request %s %s failed: %s", request.method, request.path, exc)
        return problem(400, "bad-request", str(exc))
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return problem(500, "internal", "internal error; see the broker's log")


async def _sweeper(app: web.Application) -> Any:
    broker: Broker = app["broker"]

    async def loop() -> None:
        while True:
            try:
                for task in sweep_expired(broker.store):
                    log.info("enclave challenge of task %s expired: key deleted", task)
            except PoxError as exc:
                log.error("challenge sweep failed: %s", exc)
            await asyncio.sleep(_SWEEP_INTERVAL_S)

    task = asyncio.create_task(loop())
    yield
    task.cancel()


def make_app(broker: Broker) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problems_middleware])
    app["broker"] = broker
    app.router.add_post(AUTH_PATH, handle_auth)
    app.router.add_post(ATTEST_PATH, handle_attest)
    app.router.add_get("/kbs/v0/resource/{path:.+}", handle_resource)
    app.router.add_put("/pox/v0/secrets/{path:.+}", handle_put_secret)
    app.router.add_get("/pox/v0/policies", handle_get_policies)
    app.router.add_put("/pox/v0/policies/{policy_id}", handle_put_policy)
    app.router.add_delete("/pox/v0/policies/{policy_id}", handle_delete_policy)
    app.router.add_post("/pox/v0/challenges", handle_create_challenge)
    app.cleanup_ctx.append(_sweeper)
    return app


def serve(
    config: BrokerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready_file: Path | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the broker until SIGINT/SIGTERM; announces its URL (and writes `ready_file`)."""
    broker = Broker(config)
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise PoxError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host}:{bound_port}"

    async def on_startup(app: web.Application) -> None:
        del app
        announce(f"pox sms: listening on {url} (state {config.state_dir})")
        if ready_file is not None:
            from pox_executor.primitives import write_atomically

            write_atomically(ready_file, (url + "\n").encode())

    app = make_app(broker)
    app.on_startup.append(on_startup)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)
