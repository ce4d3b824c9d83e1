"""PoX's own broker API: secret uploads, resource policies and enclave challenges (`/pox/v0`).

This module owns the endpoints data owners, requesters and schedulers call: `PUT
/pox/v0/secrets/...` (admin token, or an owner's EIP-191 signature checked by `uploads`), `PUT|GET|
DELETE /pox/v0/policies/<id>` and `POST /pox/v0/challenges` (admin token; answers the address
only).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging

from aiohttp import web

from pox_executor.sms.broker import MAX_SECRET_BYTES, Broker, read_json, require_admin
from pox_executor.sms.challenges import (
    CHALLENGE_REPOSITORY,
    ChallengeError,
    challenge_resource,
    create_challenge,
)
from pox_executor.sms.policy import (
    PolicyError,
    check_policy_id,
    parse_resource_policy,
)
from pox_executor.sms.protocol import (
    KbsProtocolError,
    check_resource_path,
)
from pox_executor.sms.uploads import UploadRefused, authorise_upload

log = logging.getLogger("pox.sms")


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
