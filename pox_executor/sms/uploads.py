"""Who may upload a secret: iExec-style EIP-191 signatures checked against on-chain ownership.

This module owns the upload message and its authorisation rules. A secret for
`dataset/<dataset address>/<tag>` must be signed by the owner of that dataset in PoX's
DatasetRegistry (read from the chain at upload time); one for `requester/<address>/<tag>` by that
account itself. Anything else needs the admin token (checked by the server). The signed text names
the resource, the SHA-256 of the value and an expiry, so a signature cannot be replayed for
another resource, another value or after it expires.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from pox_executor.errors import PoxError

MAX_VALIDITY_S = 3600
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class UploadRefused(PoxError):
    """An upload is not authorised: `status` 401 (bad signature) or 403 (not the owner)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def upload_message(resource: str, value: bytes, expires_s: int) -> str:
    """The text the owner signs with EIP-191 (`personal_sign`) to upload `value`."""
    return (
        "pox-sms put-secret\n"
        f"resource: {resource}\n"
        f"sha256: {hashlib.sha256(value).hexdigest()}\n"
        f"expires: {expires_s}"
    )


def sign_upload(private_key: str, resource: str, value: bytes, expires_s: int) -> str:
    """The owner's side: a 0x-hex EIP-191 signature of `upload_message`."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    signed = Account.sign_message(
        encode_defunct(text=upload_message(resource, value, expires_s)), private_key
    )
    return "0x" + bytes(signed.signature).hex()


@dataclass(frozen=True)
class DatasetOwners:
    """Reads dataset owners from a DatasetRegistry at `registry` over JSON-RPC `rpc_url`."""

    rpc_url: str
    registry: str

    def owner_of(self, dataset: str) -> str | None:
        from web3 import Web3

        from pox_executor.chain.artifacts import load_artifact

        w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10}))
        contract = w3.eth.contract(
            address=Web3.to_checksum_address(self.registry),
            abi=load_artifact("DatasetRegistry").abi,
        )
        entry = Web3.to_checksum_address(dataset)
        try:
            if not contract.functions.isRegistered(entry).call():
                return None
            owner = contract.functions.ownerOfEntry(entry).call()
        except Exception as exc:  # web3 raises many types for an unreachable or wrong node
            raise PoxError(f"cannot read DatasetRegistry at {self.registry}: {exc}") from exc
        return str(owner)


def authorise_upload(
    resource: str,
    value: bytes,
    *,
    signer: Any,
    signature: Any,
    expires_s: Any,
    owners: DatasetOwners | None,
    now_s: float | None = None,
) -> str:
    """The checksummed address that may upload `value` to `resource`, or UploadRefused."""
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_utils.address import to_checksum_address

    now = time.time() if now_s is None else now_s
    if not isinstance(expires_s, int) or isinstance(expires_s, bool):
        raise UploadRefused("expires: expected a Unix time (integer)", status=401)
    if expires_s <= now or expires_s > now + MAX_VALIDITY_S:
        raise UploadRefused(
            f"expires: the signature expired or is valid too long (must be within "
            f"{MAX_VALIDITY_S} s from now)",
            status=401,
        )
    if not isinstance(signer, str) or not ADDRESS.match(signer):
        raise UploadRefused("signer: expected a 0x-prefixed account address", status=401)
    if not isinstance(signature, str):
        raise UploadRefused("signature: expected a 0x-hex EIP-191 signature", status=401)
    try:
        recovered = Account.recover_message(
            encode_defunct(text=upload_message(resource, value, expires_s)),
            signature=bytes.fromhex(signature.removeprefix("0x")),
        )
    except Exception as exc:  # eth_keys raises several types for malformed signatures
        raise UploadRefused(
            f"signature: not a valid EIP-191 signature ({exc})", status=401
        ) from exc
    if to_checksum_address(recovered) != to_checksum_address(signer):
        raise UploadRefused(
            f"signature: signed by {recovered}, not by the claimed signer {signer}", status=401
        )
    repository, kind, _tag = resource.split("/")
    if repository == "requester":
        if not ADDRESS.match(kind) or to_checksum_address(kind) != to_checksum_address(signer):
            raise UploadRefused(
                f"{resource}: only requester {kind} may upload its secrets, not {signer}",
                status=403,
            )
        return str(to_checksum_address(signer))
    if repository == "dataset":
        if not ADDRESS.match(kind):
            raise UploadRefused(f"{resource}: the type must be the dataset address", status=403)
        if owners is None:
            raise UploadRefused(
                "dataset secrets need the chain: start the broker with --chain-rpc and "
                "--dataset-registry",
                status=403,
            )
        owner = owners.owner_of(kind)
        if owner is None:
            raise UploadRefused(f"{resource}: dataset {kind} is not registered", status=403)
        if to_checksum_address(owner) != to_checksum_address(signer):
            raise UploadRefused(
                f"{resource}: signed by {signer}, but dataset {kind} is owned by {owner}",
                status=403,
            )
        return str(to_checksum_address(signer))
    raise UploadRefused(
        f"{resource}: signed uploads go to dataset/<address>/<tag> or "
        "requester/<address>/<tag>; other repositories need the admin token",
        status=403,
    )
