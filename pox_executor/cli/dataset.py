"""`pox dataset`: the data owner's and the job's commands for confidential datasets.

encrypt, push, register, grant (owner); open, seal (inside a job); unseal (beneficiary);
cid (offline CID of any file); measurement (what the local sim backend, or a docker backend job
in a given image, presents to the broker).
Argument parsing and printing only: the steps are `pox_executor.datasets` and
`pox_executor.storage`. Exit codes: 0 ok, 1 a step failed, 2 usage error; `open` returns the
command's own exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pox_executor.cli import add_cid_profile_option
from pox_executor.errors import UsageError

_TOKEN_VARIABLE = "POX_SMS_ADMIN_TOKEN"
_OWNER_KEY_VARIABLE = "POX_DATASET_OWNER_KEY"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dataset", help="confidential datasets: encrypt, push, grant")
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _help(parser))

    p = commands.add_parser(
        "encrypt",
        help="encrypt FILE with a fresh AES-256 key (chunked AES-256-GCM, or iExec's CBC)",
        description="Writes FILE.pox-enc, FILE.pox-enc.json (checksum, size, CID) and "
        "FILE.pox-enc.key (base64 key, mode 0600). Existing files are never overwritten.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, help="ciphertext path (default FILE.pox-enc)")
    p.add_argument("--key-file", type=Path, help="where to write the key (default OUT.key)")
    p.add_argument("--name", help="dataset name (default: the file name)")
    p.add_argument(
        "--format", default="pox-aes256gcm-v1", choices=["pox-aes256gcm-v1", "iexec-aes256cbc"]
    )
    add_cid_profile_option(p)
    p.set_defaults(handler=_encrypt)

    p = commands.add_parser("push", help="put the ciphertext in the local store or an IPFS node")
    p.add_argument("manifest", type=Path, help="the .pox-enc.json manifest")
    p.add_argument("--ipfs", metavar="URL", help="Kubo RPC API, e.g. http://127.0.0.1:5001")
    p.add_argument("--store", type=Path, help="local store folder (default: .pox/store beside)")
    p.add_argument("--car", type=Path, help="also export a CARv1 (local store only)")
    p.set_defaults(handler=_push)

    p = commands.add_parser("register", help="register the dataset in the DatasetRegistry")
    p.add_argument("manifest", type=Path)
    p.add_argument("--chain", default="local", help="chain profile (default local)")
    p.add_argument("--role", default="requester", help="account that owns it (default requester)")
    p.set_defaults(handler=_register)

    p = commands.add_parser(
        "grant",
        help="upload the key to the broker (owner-signed) and set who may read it",
        description=f"The key is uploaded with the owner's EIP-191 signature (key from "
        f"${_OWNER_KEY_VARIABLE}, else the chain profile's --role account); the policy with the "
        f"admin token (--admin-token-file, else ${_TOKEN_VARIABLE}).",
    )
    p.add_argument("manifest", type=Path)
    p.add_argument("--broker", required=True, metavar="URL", help="pox sms serve URL")
    p.add_argument("--key-file", type=Path, help="the key file (default CIPHERTEXT.key)")
    p.add_argument(
        "--measurement",
        action="append",
        default=[],
        metavar="TYPE=VALUE",
        help="an enclave allowed to read it, e.g. sim-report=sha256:.. (repeatable)",
    )
    p.add_argument(
        "--allow-simulated",
        action="store_true",
        help="also release to simulated (sim-report) evidence: proves nothing; for demos",
    )
    p.add_argument("--admin-token-file", type=Path)
    p.add_argument("--chain", default="local", help="profile of the owner's account")
    p.add_argument("--role", default="requester")
    p.set_defaults(handler=_grant)

    p = commands.add_parser(
        "open",
        help="(in a job) attest, fetch the key, decrypt in memory, run COMMAND",
        description="Usage: pox dataset open --broker URL CIPHERTEXT -- COMMAND ARGS. "
        "COMMAND runs with the plaintext path in place of {} and in $POX_DATASET; "
        "the plaintext lives in a private memory-backed directory and is removed afterwards.",
    )
    p.add_argument("ciphertext", type=Path)
    p.add_argument("--broker", required=True, metavar="URL")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS (after CIPHERTEXT)")
    p.set_defaults(handler=_open)

    p = commands.add_parser("seal", help="encrypt a result for a beneficiary's RSA public key")
    p.add_argument("file", type=Path)
    p.add_argument("--recipient", type=Path, required=True, help="beneficiary public key (PEM)")
    p.add_argument("--out", type=Path, required=True)
    add_cid_profile_option(p)
    p.set_defaults(handler=_seal)

    p = commands.add_parser("unseal", help="decrypt a sealed result with the beneficiary's key")
    p.add_argument("sealed", type=Path)
    p.add_argument("--identity", type=Path, required=True, help="private key (PEM)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_unseal)

    p = commands.add_parser("cid", help="the CID `ipfs add` gives FILE, computed offline")
    p.add_argument("files", type=Path, nargs="+")
    add_cid_profile_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cid)

    p = commands.add_parser(
        "measurement",
        help="the measurement the local sim backend (or, with --image, a docker backend job in "
        "that image) presents to the broker",
    )
    p.add_argument("--workdir", type=Path, default=Path.cwd())
    p.add_argument("--image", help="an image the local Docker engine holds (e.g. pox/python)")
    p.set_defaults(handler=_measurement)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=1))


def _encrypt(args: argparse.Namespace) -> int:
    from pox_executor.datasets.owner import encrypt_dataset

    done = encrypt_dataset(
        args.file,
        out=args.out,
        key_path=args.key_file,
        name=args.name,
        file_format=args.format,
        profile=args.cid_profile,
    )
    print(f"ciphertext: {done.ciphertext}")
    print(f"manifest:   {done.manifest_path}")
    print(f"key:        {done.key_path} (mode 0600; keep it secret, grant it with the broker)")
    print(f"checksum:   {done.manifest.checksum}")
    assert done.manifest.cid is not None
    print(f"cid:        {done.manifest.cid['cid']} (profile {done.manifest.cid['profile']})")
    return 0


def _push(args: argparse.Namespace) -> int:
    from pox_executor.datasets.owner import push_dataset
    from pox_executor.storage.kubo import KuboClient
    from pox_executor.storage.localstore import LocalStore

    if args.ipfs and (args.store or args.car):
        raise UsageError("--ipfs pushes to a node; --store and --car are for the local store")
    manifest = push_dataset(
        args.manifest,
        store=LocalStore(args.store) if args.store else None,
        node=KuboClient(args.ipfs) if args.ipfs else None,
        car=args.car,
    )
    assert manifest.cid is not None
    print(f"{manifest.cid['cid']} (profile {manifest.cid['profile']}) -> {manifest.locations[-1]}")
    return 0


def _chain_client(name: str) -> Any:
    from pox_executor.chain.client import connect
    from pox_executor.chain.profiles import load_profile

    profile = load_profile(name)
    if profile is None:
        raise UsageError("this step needs a chain: --chain none cannot register a dataset")
    return connect(profile, deadline=time.monotonic() + 120)


def _register(args: argparse.Namespace) -> int:
    from pox_executor.datasets.manifest import read_manifest
    from pox_executor.datasets.registry import multiaddr_of, register_dataset

    multiaddr_of(read_manifest(args.manifest))  # a missing or unpushed manifest: before the chain
    manifest = register_dataset(args.manifest, _chain_client(args.chain), role=args.role)
    assert manifest.dataset is not None
    print(f"dataset {manifest.dataset['address']} owned by {manifest.dataset['owner']}")
    print(f"registry {manifest.dataset['registry']} on chain {manifest.dataset['chain_id']}")
    return 0


def _read_token(path: Path | None) -> str:
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the admin token ({exc})") from None
    token = os.environ.get(_TOKEN_VARIABLE)
    if not token:
        raise UsageError(
            f"the policy needs the broker's admin token: --admin-token-file or ${_TOKEN_VARIABLE}"
        )
    return token


def _grant(args: argparse.Namespace) -> int:
    from pox_executor.datasets.grant import grant_dataset
    from pox_executor.datasets.manifest import read_manifest
    from pox_executor.datasets.owner import KEY_SUFFIX

    manifest = read_manifest(args.manifest)
    key_file = args.key_file or args.manifest.parent / (manifest.ciphertext + KEY_SUFFIX)
    owner_key = os.environ.get(_OWNER_KEY_VARIABLE)
    if not owner_key:
        owner_key = _chain_client(args.chain).accounts.key(args.role)
    granted = grant_dataset(
        args.manifest,
        args.broker,
        key_path=key_file,
        owner_key=owner_key,
        admin_token=_read_token(args.admin_token_file),
        measurements=args.measurement,
        allow_simulated=args.allow_simulated,
    )
    assert granted.grant is not None
    print(f"granted {granted.grant['resource']} under policy {granted.grant['policy']}")
    if args.allow_simulated:
        print("warning: simulated evidence may read this key; it proves nothing", file=sys.stderr)
    return 0


def _open(args: argparse.Namespace) -> int:
    from pox_executor.datasets.job import run_with_dataset

    command = list(args.command)
    if command[:1] == ["--"]:  # argparse keeps or drops the separator depending on version
        command = command[1:]
    return run_with_dataset(args.ciphertext, args.broker, command)


def _seal(args: argparse.Namespace) -> int:
    from pox_executor.datasets.job import seal_result

    manifest = seal_result(args.file, args.recipient, args.out, profile=args.cid_profile)
    assert manifest.cid is not None
    print(f"{args.out}: {manifest.checksum} {manifest.cid['cid']}")
    return 0


def _unseal(args: argparse.Namespace) -> int:
    from pox_executor.datasets.job import unseal_result

    print(unseal_result(args.sealed, args.identity, args.out))
    return 0


def _cid(args: argparse.Namespace) -> int:
    from pox_executor.storage.unixfs import get_profile, import_file

    profile = get_profile(args.cid_profile)
    for path in args.files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        result = import_file(path, profile)
        if args.json:
            _print({"file": str(path), **result.record()})
        else:
            print(f"{result.cid}  {path}  ({profile.name})")
    return 0


def _measurement(args: argparse.Namespace) -> int:
    from pox_executor.enclave.backends import create_runtime

    if args.image:
        from pox_executor.enclave.docker import DockerRuntime, image_reference

        image = DockerRuntime().resolve(image_reference(args.image))
        print(f"sim-report={image.measurement}")
        return 0
    runtime: Any = create_runtime("sim")
    runtime.prepare(args.workdir.resolve())
    print(f"sim-report={runtime.measurement()}")
    return 0
