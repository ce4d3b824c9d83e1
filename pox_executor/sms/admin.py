"""Host-side calls to the broker's PoX API: policies, secret uploads, enclave challenges.

This module owns the client of `/pox/v0/*` for data owners, requesters and schedulers (never the
guest: jobs use `client`). Admin calls carry the bearer token; secret uploads carry either the
token or an owner's EIP-191 signature made with `uploads.sign_upload`.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

from pox_executor.errors import PoxError
from pox_executor.sms.client import BrokerRefused, _refusal
from pox_executor.sms.protocol import check_resource_path
from pox_executor.sms.uploads import sign_upload

__all__ = ["create_challenge", "list_policies", "put_policy", "put_secret"]


def _call(
    method: str, url: str, payload: Any, *, token: str | None, timeout_s: float = 30.0
) -> Any:
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _refusal(exc.code, exc.read(), method, url) from None
    except (OSError, ValueError) as exc:
        raise PoxError(f"cannot reach the key broker ({method} {url}): {exc}") from exc


def put_policy(broker_url: str, token: str, policy_id: str, document: Any) -> Any:
    """Create or replace resource policy `policy_id` (see docs/sms.md for the format)."""
    return _call(
        "PUT", f"{broker_url.rstrip('/')}/pox/v0/policies/{policy_id}", document, token=token
    )


def list_policies(broker_url: str, token: str) -> Any:
    return _call("GET", f"{broker_url.rstrip('/')}/pox/v0/policies", None, token=token)


def put_secret(
    broker_url: str,
    resource: str,
    value: bytes,
    *,
    token: str | None = None,
    signer_key: str | None = None,
    replace: bool = False,
    validity_s: int = 300,
) -> Any:
    """Upload `value` as `resource`, authorised by the admin `token` or the owner's `signer_key`."""
    path = check_resource_path(resource)
    payload: dict[str, Any] = {"value": base64.b64encode(value).decode("ascii")}
    if replace:
        payload["replace"] = True
    if signer_key is not None:
        from eth_account import Account

        expires = int(time.time()) + validity_s
        payload.update(
            signer=str(Account.from_key(signer_key).address),
            signature=sign_upload(signer_key, path, value, expires),
            expires=expires,
        )
    elif token is None:
        raise PoxError("put_secret: give the admin token or the owner's signing key")
    return _call("PUT", f"{broker_url.rstrip('/')}/pox/v0/secrets/{path}", payload, token=token)


def create_challenge(
    broker_url: str, token: str, task_id: str, deadline_s: int, *, policy: str | None = None
) -> str:
    """Ask the broker for task `task_id`'s enclave challenge; returns only its address."""
    payload = {"task_id": task_id, "deadline": deadline_s, "policy": policy}
    record = _call("POST", f"{broker_url.rstrip('/')}/pox/v0/challenges", payload, token=token)
    if not isinstance(record, dict) or not isinstance(record.get("address"), str):
        raise PoxError(f"{broker_url}: the challenge answer has no address")
    return str(record["address"])


# Re-exported for callers that catch refusals from both guest and host calls.
BrokerRefused = BrokerRefused
