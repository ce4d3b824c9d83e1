"""Granting a dataset's key to the broker: the key as a secret uploaded with the owner's
EIP-191 signature (the broker checks the owner in the DatasetRegistry), and the resource policy
that says which attested enclaves may read it (admin API, bearer token).

The resource is `dataset/<dataset address>/key`; the policy id is `dataset-<address>`. The
policy lists reference measurements per evidence type; simulated evidence is refused unless
`allow_simulated` (and then the release is logged by the broker as simulated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pox_executor.datasets.manifest import DatasetManifest, read_manifest, write_manifest
from pox_executor.datasets.owner import read_key_file
from pox_executor.errors import UsageError
from pox_executor.sms.admin import put_policy, put_secret

EVIDENCE_TYPES = ("sgx-dcap-quote", "tdx-quote", "snp-report", "sim-report")
_FIELD = {"sgx-dcap-quote": "mrenclave", "tdx-quote": "mrtd", "snp-report": "measurement"}


def parse_measurement(text: str) -> tuple[str, dict[str, str]]:
    """`TYPE=VALUE` (e.g. `sim-report=sha256:ab..`, `sgx-dcap-quote=<mrenclave hex>`)."""
    kind, sep, value = text.partition("=")
    if not sep or kind not in EVIDENCE_TYPES or not value:
        raise UsageError(
            f"--measurement {text!r}: expected TYPE=VALUE with TYPE one of "
            f"{', '.join(EVIDENCE_TYPES)}"
        )
    return kind, {_FIELD.get(kind, "measurement"): value}


def dataset_policy(
    manifest: DatasetManifest,
    measurements: list[str],
    *,
    allow_simulated: bool = False,
) -> dict[str, Any]:
    if not measurements:
        raise UsageError(
            "a grant names at least one enclave measurement (--measurement TYPE=VALUE)",
            hint="`pox dataset measurement` prints the local sim backend's",
        )
    by_type: dict[str, list[dict[str, str]]] = {}
    for text in measurements:
        kind, identity = parse_measurement(text)
        by_type.setdefault(kind, []).append(identity)
    return {
        "version": 1,
        "description": f"dataset {manifest.name} ({manifest.address}): enclaves allowed to read it",
        "resources": [manifest.key_resource],
        "allow_simulated": allow_simulated,
        # a simulated TEE is a debug TEE by construction: allowing one allows the other
        "attestation": {"allow_debug": allow_simulated, "measurements": by_type},
    }


def grant_dataset(
    manifest_path: str | Path,
    broker_url: str,
    *,
    key_path: str | Path,
    owner_key: str,
    admin_token: str,
    measurements: list[str],
    allow_simulated: bool = False,
) -> DatasetManifest:
    where = Path(manifest_path)
    manifest = read_manifest(where)
    key = read_key_file(key_path)
    policy = dataset_policy(manifest, measurements, allow_simulated=allow_simulated)
    policy_id = f"dataset-{manifest.address.lower()}"
    put_policy(broker_url, admin_token, policy_id, policy)
    put_secret(broker_url, manifest.key_resource, key, signer_key=owner_key, replace=True)
    manifest.grant = {
        "broker": broker_url,
        "resource": manifest.key_resource,
        "policy": policy_id,
        "measurements": sorted(measurements),
        "allow_simulated": allow_simulated,
    }
    write_manifest(where, manifest)
    return manifest
