"""The chain package's one reader of log records: which log lines are jobs, and what settlement
needs from each (result digest, rule, app checksum, image, enclave challenge).

Owns `read_job(index, line)`. Every module of `pox_executor.chain` (and the on-chain part of
`pox verify`) reads records through it and nothing else, so switching to the provenance
package's typed record reader is a change to this file only. Only in-toto statements whose
`predicateType` is SLSA provenance v1 are jobs; other signed entries in the log (a session's
opening or closing) are not settled and give None.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785

from pox_executor.errors import BundleError

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
_CODE_KINDS = ("code", "workflow-source")


@dataclass(frozen=True)
class JobRecord:
    """What settlement needs from one job's log line."""

    index: int  # position in the log (the Merkle leaf index)
    digest: bytes  # SHA-256 of the DSSE envelope line: the PoCo task's result digest
    rule: str
    app_checksum: bytes  # SHA-256 of the rule's code identity; the registered app's checksum
    image_digest: str
    enclave: str | None  # the PoCo enclave challenge address bound in the evidence


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleError(f"{where}: expected a JSON object")
    return value


def read_job(index: int, line: bytes) -> JobRecord | None:
    """The job in log line `index`, or None when the line is a signed entry that is not a job."""
    where = f"log record {index}"
    try:
        envelope = _object(json.loads(line), where)
        payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
        statement = _object(json.loads(payload), f"{where} (payload)")
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise BundleError(f"{where}: not a DSSE envelope with a JSON statement ({exc})") from exc
    if statement.get("predicateType") != SLSA_PROVENANCE_V1:
        return None
    predicate = _object(statement.get("predicate", {}), f"{where} field 'predicate'")
    build = _object(predicate.get("buildDefinition", {}), f"{where} field 'buildDefinition'")
    run_details = _object(predicate.get("runDetails", {}), f"{where} field 'runDetails'")
    binding: dict[str, Any] = {}
    for byproduct in run_details.get("byproducts", []) or []:
        annotations = byproduct.get("annotations", {}) if isinstance(byproduct, dict) else {}
        if isinstance(annotations, dict) and isinstance(annotations.get("binding"), dict):
            binding = annotations["binding"]
    # The rule's code: its script/notebook/wrapper files and the workflow sources, not the
    # formatted command (which differs per wildcard), plus the rule name and enclave image.
    code = sorted(
        (str(d.get("name")), str(d.get("digest", {}).get("sha256")))
        for d in build.get("resolvedDependencies", []) or []
        if isinstance(d, dict)
        and isinstance(d.get("annotations", {}), dict)
        and d.get("annotations", {}).get("pox.kind") in _CODE_KINDS
        and not str(d.get("name", "")).startswith("pox:")
    )
    image = str(binding.get("image_digest", ""))
    parameters = build.get("externalParameters", {})
    rule = str(parameters.get("rule", "job")) if isinstance(parameters, dict) else "job"
    checksum = hashlib.sha256(
        rfc8785.dumps({"image_digest": image, "rule": rule, "code": code})
    ).digest()
    enclave = binding.get("enclave_challenge")
    return JobRecord(
        index=index,
        digest=hashlib.sha256(line).digest(),
        rule=rule,
        app_checksum=checksum,
        image_digest=image,
        enclave=str(enclave) if enclave is not None else None,
    )
