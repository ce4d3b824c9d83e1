"""`pox sms serve`: the key broker as an aiohttp service (KBS 0.4.0 plus PoX's admin and SMS API).

This module owns the application: routes (`kbs_api`, `pox_api`), the middleware that turns every
error into an RFC 7807 problem document (400, 401, 403, 404, 405, 409, 413 or 415; bad input
never yields a 500), the sweeper that deletes expired challenge keys, and `serve`, which binds the
socket (port 0 picks a free one) and announces the URL. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from pox_executor.errors import PoxError
from pox_executor.sms.broker import MAX_BODY_BYTES, Broker, BrokerConfig, problem
from pox_executor.sms.challenges import (
    sweep_expired,
)
from pox_executor.sms.kbs_api import handle_attest, handle_auth, handle_resource
from pox_executor.sms.pox_api import (
    handle_create_challenge,
    handle_delete_policy,
    handle_get_policies,
    handle_put_policy,
    handle_put_secret,
)
from pox_executor.sms.protocol import (
    ATTEST_PATH,
    AUTH_PATH,
    KbsProtocolError,
)

log = logging.getLogger("pox.sms")

_SWEEP_INTERVAL_S = 1.0


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
    except RecursionError:
        return problem(400, "bad-request", "request JSON is nested too deeply")
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
