"""The KBS 0.4.0 endpoints: `/kbs/v0/auth`, `/kbs/v0/attest`, `/kbs/v0/resource/...`.

This module owns the attestation protocol's server side: a challenge per session, the runtime-data
binding checked by PoX's verifier pipeline (authenticity, freshness, binding at attest time;
measurements, TCB and debug per resource), the release decision over the resource policies, and
the JWE answer to the attested TEE key. Enclave challenge keys are released here too, only to the
session that attested for their task.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from typing import Any

from aiohttp import web

from pox_executor.enclave.evidence import Evidence
from pox_executor.enclave.verifiers import CollateralCache
from pox_executor.errors import EvidenceError, PoxError
from pox_executor.sms import jwe
from pox_executor.sms.broker import Broker, Session, read_json
from pox_executor.sms.challenges import (
    CHALLENGE_REPOSITORY,
    CHALLENGE_TAG,
    ChallengeError,
    challenge_key,
    check_task_id,
)
from pox_executor.sms.coco_evidence import (
    COLLATERAL_DIR,
    evidence_from_kbs,
    verify_attestation,
)
from pox_executor.sms.protocol import (
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

log = logging.getLogger("pox.sms")


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
        evidence = primary_evidence(session.tee, tee_evidence["primary_evidence"])
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
        evidence, report = verify_attestation(
            evidence,
            expected,
            collateral_cache=CollateralCache(broker.config.state_dir / COLLATERAL_DIR),
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


def primary_evidence(tee: str, primary: Any) -> Evidence:
    """PoX's evidence envelope, or a CoCo attester's native form (see `sms.coco_evidence`)."""
    return evidence_from_kbs(tee, primary)


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


def authorise_release(
    broker: Broker, session: Session, resource: str, policies: Any, *, named: bool = False
) -> str:
    """The id of a policy that releases `resource` to this session, or a 403 naming the reasons.

    `named`: the policies were named for this resource (a task's challenge policy), so they apply
    whatever their `resources` patterns say.
    """
    assert session.evidence is not None
    reasons: list[str] = []
    for policy in policies:
        if not named and not policy.covers(resource):
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
    released_by = authorise_release(
        broker, session, resource, candidates, named=isinstance(policy_id, str)
    )
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
