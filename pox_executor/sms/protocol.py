"""The Trustee KBS attestation protocol 0.4.0 as PoX speaks it: names, payload shapes, binding.

This module owns what the broker (`server`) and the guest (`client`) must agree on byte for byte:
the protocol version (`"0.4.0"`, compared exactly as Trustee does), the session cookie name, the
endpoint paths, the mapping between KBS TEE names and PoX evidence types, resource path syntax,
and the runtime-data binding: the RFC 8785 canonical JSON of the runtime data (at least `nonce`
and `tee-pubkey`), hashed with the algorithm the challenge selects (SHA-384 by default) and
zero-padded to the 64 bytes of TEE report data, as Trustee's verifiers do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

from pox_executor.enclave.evidence import REPORT_DATA_SIZE
from pox_executor.errors import PoxError

KBS_PROTOCOL_VERSION = "0.4.0"
SESSION_COOKIE = "kbs-session-id"
API_PREFIX = "/kbs/v0"
AUTH_PATH = f"{API_PREFIX}/auth"
ATTEST_PATH = f"{API_PREFIX}/attest"
RESOURCE_PREFIX = f"{API_PREFIX}/resource/"

# extra-params keys of Trustee's challenge negotiation
SUPPORTED_HASH_ALGORITHMS = "supported-hash-algorithms"
SELECTED_HASH_ALGORITHM = "selected-hash-algorithm"
DEFAULT_HASH_ALGORITHM = "sha384"
HASH_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

# RFC 7807 problem kind of a 401 for a session the broker does not know (expired or restarted):
# a client may start again with /auth.
UNKNOWN_SESSION = "unknown-session"

# PoX extension: runtime data may name the PoCo task the job runs for (covered by the hash).
RUNTIME_TASK_FIELD = "pox-task"

# KBS `tee` names and the PoX evidence type each carries. `sample` is Trustee's test attester;
# in PoX it carries an honest `sim-report`.
TEE_EVIDENCE_TYPES = {
    "sgx": "sgx-dcap-quote",
    "tdx": "tdx-quote",
    "snp": "snp-report",
    "sample": "sim-report",
}
EVIDENCE_TEES = {kind: tee for tee, kind in TEE_EVIDENCE_TYPES.items()}

# repository/type/tag, each a non-empty run of URL-safe characters (no dot-only segments)
_SEGMENT = r"(?!\.{1,2}(?:/|$))[A-Za-z0-9._-]{1,128}"
RESOURCE_PATH = re.compile(rf"^{_SEGMENT}/{_SEGMENT}/{_SEGMENT}$")


class KbsProtocolError(PoxError):
    """A KBS message is malformed or the broker refused a request (status and RFC 7807 body)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        problem: str = "bad-request",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.problem = problem


def check_resource_path(path: str) -> str:
    """`repository/type/tag` or a KbsProtocolError naming what is wrong with it."""
    clean = path.strip("/")
    if not RESOURCE_PATH.match(clean):
        raise KbsProtocolError(
            f"resource path {path!r}: expected <repository>/<type>/<tag>, each 1-128 characters "
            "of A-Z a-z 0-9 . _ -",
            status=404,
            problem="not-found",
        )
    return clean


def hash_algorithm_of(extra_params: Any) -> str:
    """The runtime-data hash algorithm a challenge's extra-params select (SHA-384 by default)."""
    if isinstance(extra_params, Mapping):
        name = extra_params.get(SELECTED_HASH_ALGORITHM)
        if isinstance(name, str) and name.lower() in HASH_ALGORITHMS:
            return name.lower()
        if name is not None:
            raise KbsProtocolError(
                f"challenge selects unsupported hash algorithm {name!r}; "
                f"expected one of {', '.join(HASH_ALGORITHMS)}"
            )
    return DEFAULT_HASH_ALGORITHM


def select_hash_algorithm(request_extra_params: Any) -> str:
    """The algorithm the broker selects for a client's `/auth` extra-params."""
    if isinstance(request_extra_params, Mapping):
        offered = request_extra_params.get(SUPPORTED_HASH_ALGORITHMS)
        if isinstance(offered, list) and offered:
            names = [str(name).lower() for name in offered]
            for preferred in ("sha384", "sha512", "sha256"):
                if preferred in names:
                    return preferred
            raise KbsProtocolError(
                f"extra-params.{SUPPORTED_HASH_ALGORITHMS}: none of {offered} is supported; "
                f"expected one of {', '.join(HASH_ALGORITHMS)}",
                status=401,
                problem="unauthorized",
            )
    return DEFAULT_HASH_ALGORITHM


def runtime_data_digest(runtime_data: Mapping[str, Any], algorithm: str) -> bytes:
    """The 64 report-data bytes binding `runtime_data`: hash of its RFC 8785 form, zero-padded."""
    try:
        hasher = HASH_ALGORITHMS[algorithm]
    except KeyError:
        raise KbsProtocolError(f"unsupported hash algorithm {algorithm!r}") from None
    try:
        canonical = rfc8785.dumps(dict(runtime_data))
    except (TypeError, ValueError, RecursionError, rfc8785.CanonicalizationError) as exc:
        raise KbsProtocolError(f"runtime-data cannot be canonicalised (RFC 8785): {exc}") from exc
    digest = hasher(canonical).digest()
    return digest.ljust(REPORT_DATA_SIZE, b"\0")[:REPORT_DATA_SIZE]
