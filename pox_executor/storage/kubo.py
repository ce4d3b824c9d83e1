"""A small client for Kubo's RPC API (`POST /api/v0/...`): version, add, cat, pin/add.

Why our own: `ipfshttpclient` (last release 2021) refuses every current Kubo in `connect()`
because it checks the daemon version, and `aioipfs` stops at Kubo 0.28. The four calls PoX
needs are plain HTTP POSTs, so this module speaks them over `http.client` (no dependency),
streams uploads and downloads (a 10 GB file never sits in memory), and checks the CID the node
returns against the one computed offline while the bytes go out: a node that builds another DAG
(other chunker, other defaults) is an error, not a silently different address.
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from pox_executor.errors import PoxError, UsageError
from pox_executor.storage.multiformats import Cid, parse_cid
from pox_executor.storage.unixfs import FileImporter, ImportResult, Profile

_READ_BYTES = 1 << 20


class IpfsNodeError(PoxError):
    """The IPFS node could not be reached, refused a call, or answered something unexpected."""


@dataclass(frozen=True)
class KuboVersion:
    version: str
    commit: str
    system: str


class KuboClient:
    """`KuboClient("http://127.0.0.1:5001")`: one node's RPC API."""

    def __init__(self, url: str, *, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(
                f"IPFS RPC address {url!r} is not an http://HOST:PORT URL",
                hint="Kubo's RPC API listens on http://127.0.0.1:5001 by default",
            )
        self.url = f"http://{parts.hostname}:{parts.port or 5001}"
        self._host = parts.hostname
        self._port = parts.port or 5001
        self._base = parts.path.rstrip("/")
        self._timeout_s = timeout_s

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)

    def _post(
        self,
        command: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        query = f"?{urlencode(params)}" if params else ""
        connection = self._connection()
        try:
            connection.request(
                "POST", f"{self._base}/api/v0/{command}{query}", body=body, headers=headers or {}
            )
            response = connection.getresponse()
        except OSError as exc:
            connection.close()
            raise IpfsNodeError(
                f"IPFS node at {self.url} did not answer {command}: {exc}",
                hint="start the node (`ipfs daemon`) or check --pox-ipfs",
            ) from None
        if response.status != 200:
            detail = response.read(64 * 1024).decode("utf-8", "replace")
            connection.close()
            try:
                detail = str(json.loads(detail).get("Message", detail))
            except (ValueError, AttributeError):
                pass
            raise IpfsNodeError(
                f"IPFS node at {self.url} refused {command} (HTTP {response.status}): {detail}"
            )
        return connection, response

    def _post_json(self, command: str, params: dict[str, str] | None = None) -> Any:
        connection, response = self._post(command, params)
        try:
            return json.loads(response.read())
        except ValueError:
            raise IpfsNodeError(f"IPFS node at {self.url} sent non-JSON for {command}") from None
        finally:
            connection.close()

    def version(self) -> KuboVersion:
        answer = self._post_json("version")
        return KuboVersion(
            str(answer.get("Version", "")),
            str(answer.get("Commit", "")),
            str(answer.get("System", "")),
        )

    def add(
        self, path: str | os.PathLike[str], profile: Profile, *, pin: bool = True
    ) -> ImportResult:
        """Upload a file with `profile`'s import settings; returns its CID (checked offline)."""
        source = Path(path)
        size = source.stat().st_size
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{source.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        importer = FileImporter(profile)

        def body() -> Iterator[bytes]:
            yield head
            with open(source, "rb") as handle:
                while chunk := handle.read(_READ_BYTES):
                    importer.write(chunk)
                    yield chunk
            yield tail

        params = {
            "cid-version": str(profile.cid_version),
            "raw-leaves": str(profile.raw_leaves).lower(),
            "chunker": f"size-{profile.chunk_size}",
            "pin": str(pin).lower(),
            "quieter": "true",
            "cid-base": "base32" if profile.cid_version == 1 else "base58btc",
        }
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        connection, response = self._post("add", params, body(), headers)
        try:
            lines = [line for line in response.read().splitlines() if line.strip()]
        finally:
            connection.close()
        try:
            answer = json.loads(lines[-1])
            node_cid = parse_cid(str(answer["Hash"]))
        except (IndexError, ValueError, KeyError, PoxError):
            raise IpfsNodeError(f"IPFS node at {self.url} gave no CID for {source}") from None
        expected = importer.finish()
        if str(node_cid) != str(expected.cid):
            raise IpfsNodeError(
                f"IPFS node at {self.url} built {node_cid} for {source}, but profile "
                f"{profile.name} gives {expected.cid}",
                hint="the node's import defaults differ from the profile (Import.* settings)",
            )
        return expected

    def cat(self, cid: Cid | str) -> Iterator[bytes]:
        """Stream the file under `cid` from the node."""
        connection, response = self._post("cat", {"arg": str(cid)})
        try:
            while chunk := response.read(_READ_BYTES):
                yield chunk
        finally:
            connection.close()

    def pin_add(self, cid: Cid | str) -> list[str]:
        answer = self._post_json("pin/add", {"arg": str(cid)})
        return [str(pin) for pin in answer.get("Pins", [])]


def _dag_import_body(car: Path, boundary: str) -> tuple[bytes, bytes, int]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{car.name}"\r\n'
        "Content-Type: application/vnd.ipld.car\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail, car.stat().st_size


def dag_import(client: KuboClient, car: str | os.PathLike[str]) -> list[str]:
    """`POST /api/v0/dag/import`: load a CARv1 (e.g. the local store's export) into the node,
    pinning its roots; returns the root CIDs the node reports."""
    path = Path(car)
    boundary = uuid.uuid4().hex
    head, tail, size = _dag_import_body(path, boundary)

    def body() -> Iterator[bytes]:
        yield head
        with open(path, "rb") as handle:
            while chunk := handle.read(_READ_BYTES):
                yield chunk
        yield tail

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
    }
    connection, response = client._post("dag/import", {"pin-roots": "true"}, body(), headers)
    try:
        lines = [line for line in response.read().splitlines() if line.strip()]
    finally:
        connection.close()
    roots = []
    for line in lines:
        try:
            root = json.loads(line).get("Root", {})
            roots.append(str(root["Cid"]["/"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return roots
