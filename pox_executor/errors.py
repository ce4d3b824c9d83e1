"""The one exception hierarchy of PoX.

Every error carries a message written for a person (what was wrong, where, and what to do);
`diagnostics()` renders it for the CLI, which prints that instead of a traceback.
"""

from __future__ import annotations


class PoxError(Exception):
    """Base class: `str(err)` is the one-line summary, `hint` an optional next step."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def diagnostics(self) -> str:
        text = f"error: {self}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class UsageError(PoxError):
    """The user asked for something that cannot be done as asked (CLI exit code 2)."""


class BundleError(PoxError):
    """A run bundle on disk is missing, unreadable or malformed."""


class VerificationError(PoxError):
    """A cryptographic or structural check failed (signature, proof, digest, binding)."""


class MerkleError(VerificationError):
    """An RFC 9162 inclusion or consistency proof does not verify."""


class EnclaveError(PoxError):
    """An enclave runtime could not prepare, run or attest a job."""


class EvidenceError(VerificationError):
    """TEE evidence is malformed, unauthentic, stale or rejected by policy."""
