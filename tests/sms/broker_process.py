"""A real `pox sms serve` process on loopback for the broker tests, and small HTTP helpers.

The broker runs as a child process (`python -m pox_executor.cli sms serve`) on a free port with a
temporary state directory; `stop()` sends SIGTERM and waits, `restart()` starts it again on the
same port and state, as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 30.0


class BrokerProcess:
    def __init__(self, state_dir: Path, *, extra_args: list[str] | None = None) -> None:
        self.state_dir = state_dir
        self.extra_args = extra_args or []
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir.parent / f"{state_dir.name}.log"

    def start(self) -> None:
        ready = self.state_dir.parent / f"{self.state_dir.name}.ready"
        ready.unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pox_executor.cli",
                "sms",
                "serve",
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.port),
                "--ready-file",
                str(ready),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker not ready after {STARTUP_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.02)
        self.url = ready.read_text().strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def token(self) -> str:
        return (self.state_dir / "admin.token").read_text().strip()


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP exchange: (status, headers, body), error statuses included."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def problem_of(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    assert {"type", "title", "status", "detail"} <= set(document), document
    return dict(document)
