"""What settlement needs from each job of a run's log (result digest, rule, app checksum, image,
enclave challenge), read through the provenance package's one record reader.

Owns `read_job(index, line)`. Every module of `pox_executor.chain` (and the on-chain part of
`pox verify`) reads records through it and nothing else. Only job records (in-toto statements
with the SLSA provenance v1 predicate) are settled; the log's other signed entries (a session's
opening or closing) are anchored with the log but give None here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import rfc8785

from pox_executor.errors import BundleError, PoxError
from pox_executor.provenance.records import JobRecord, decode_line
from pox_executor.provenance.statement import KIND_CODE, KIND_SOURCE
from pox_executor.provenance.statement import PREDICATE_TYPE as SLSA_PROVENANCE_V1

_CODE_KINDS = (KIND_CODE, KIND_SOURCE)


@dataclass(frozen=True)
class SettledJob:
    """What settlement needs from one job's log line."""

    index: int  # position in the log (the Merkle leaf index)
    digest: bytes  # SHA-256 of the DSSE envelope line: the PoCo task's result digest
    rule: str
    app_checksum: bytes  # SHA-256 of the rule's code identity; the registered app's checksum
    image_digest: str
    enclave: str | None  # the PoCo enclave challenge address bound in the evidence


def read_job(index: int, line: bytes) -> SettledJob | None:
    """The job in log line `index`, or None when the line is a signed entry that is not a job."""
    try:
        _, entry = decode_line(line, line_no=index + 1)
    except PoxError as exc:
        raise BundleError(f"log record {index}: {exc}") from exc
    if not isinstance(entry, JobRecord):
        return None
    # The rule's code: its script/notebook/wrapper files and the workflow sources, not the
    # formatted command (which differs per wildcard), plus the rule name and enclave image.
    code = sorted(
        (d.name, str(d.sha256))
        for d in entry.dependencies
        if d.annotations.get("pox.kind") in _CODE_KINDS and not d.name.startswith("pox:")
    )
    image = entry.binding.image_digest
    checksum = hashlib.sha256(
        rfc8785.dumps({"image_digest": image, "rule": entry.rule, "code": code})
    ).digest()
    return SettledJob(
        index=index,
        digest=hashlib.sha256(line).digest(),
        rule=entry.rule,
        app_checksum=checksum,
        image_digest=image,
        enclave=entry.binding.enclave_challenge,
    )


__all__ = ["SLSA_PROVENANCE_V1", "SettledJob", "read_job"]
