"""Settling a run on chain: per-step PoCo deals for its records, then anchoring its checkpoint.

Owns the journal `.pox/runs/<run-id>/chain.json` and the plan/execute cycle used both at the end
of a run (and for intermediate checkpoints) and by `pox anchor`:

* plan (offline, no node needed): every log record not yet planned gets a PoCo task. Its app is
  registered by checksum (enclave image digest, rule name, the rule's script files and the
  workflow sources), the pool once; `per-job`
  gives each record its own deal (match, initialize, contributeAndFinalize), `batched` one deal per
  (app, enclave challenge) group of the new records, finalized as one batch. App, pool, deal and
  task ids are all computed off-chain (CREATE2-style registry addresses, PoCo's EIP-712 order
  hashes with a deterministic salt), so the journal and the anchor can name them before any
  transaction is sent. Then one `anchor` action for the checkpoint (size, root), listing the task
  ids planned since the previous anchor.
* execute: actions run in order; each is first checked on chain (already done: marked done
  without a transaction, so running twice is a no-op), else sent and marked `done` with its tx
  hash, block and gas. Progress is written at least every second and after each anchor; an
  action whose `done` was not yet written when the process died is found done on chain by the
  next settlement (then without its tx hash), not sent twice. A node that stays down past the
  deadline leaves the rest pending (`ChainUnavailable`); `pox anchor` resumes from the journal.

The result digest of a task is the job's DSSE envelope digest (SHA-256 of the log line): it
commits to the statement, the evidence and the enclave challenge address bound in it. The journal
is written atomically (temporary file, fsync, rename) under a file lock shared by concurrent
settlers (the run's background thread, `pox anchor`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3

from pox_executor.chain import poco
from pox_executor.chain.client import (
    ChainClient,
    ChainReverted,
    ChainUnavailable,
    is_transient,
    retry,
)
from pox_executor.errors import BundleError, PoxError
from pox_executor.primitives import write_atomically
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.checkpoint import parse_signed_note
from pox_executor.provenance.log import read_log_lines

JOURNAL_FILE = "chain.json"
JOURNAL_FORMAT = "pox-chain/v1"
DEALS_MODES = ("per-job", "batched", "none")
ZERO = "0x" + "00" * 20
APP_TYPE = "DOCKER"
POOL_DESCRIPTION = "pox workerpool"
ALWAYS_CHECKED = ("register_app", "create_pool", "anchor")  # others may have done these
BATCH_MAX = 500  # tasks per batch transaction (bounded calldata/gas on an 8M-gas chain)

_PROCESS_LOCK = threading.Lock()


class SettleError(PoxError):
    """The journal and the bundle or the chain disagree."""


@dataclass
class SettleResult:
    sent: int = 0
    noop: int = 0
    pending: int = 0
    anchored_size: int = 0
    gas_used: int = 0
    error: str | None = None
    txs: list[dict[str, Any]] = field(default_factory=list)


def run_id_bytes(run_id: str) -> bytes:
    """The registry's run id: SHA-256 of the PoX run id (UTF-8)."""
    return hashlib.sha256(run_id.encode("utf-8")).digest()


def journal_path(bundle: RunBundle) -> Path:
    return bundle.path / JOURNAL_FILE


def read_journal(bundle: RunBundle) -> dict[str, Any] | None:
    path = journal_path(bundle)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != JOURNAL_FORMAT:
        raise BundleError(f"{path}: field 'format' is not {JOURNAL_FORMAT!r}")
    return doc


def _save(bundle: RunBundle, doc: dict[str, Any]) -> None:
    data = json.dumps(doc, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    write_atomically(journal_path(bundle), data)


@contextmanager
def _journal_lock(bundle: RunBundle) -> Iterator[None]:
    with _PROCESS_LOCK, open(bundle.path / ".chain.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordInfo:
    index: int
    digest: bytes  # envelope digest: the task's result digest
    rule: str
    app_checksum: bytes
    image_digest: str
    enclave: str | None


def record_info(index: int, line: bytes) -> RecordInfo:
    import base64

    envelope = json.loads(line)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    predicate = statement.get("predicate", {})
    build = predicate.get("buildDefinition", {})
    binding: dict[str, Any] = {}
    for byproduct in predicate.get("runDetails", {}).get("byproducts", []):
        annotations = byproduct.get("annotations", {})
        if "binding" in annotations:
            binding = annotations["binding"]
    # The rule's code: its script/notebook/wrapper files and the workflow sources, not the
    # formatted command (which differs per wildcard), plus the rule name and enclave image.
    code = sorted(
        (str(d.get("name")), str(d.get("digest", {}).get("sha256")))
        for d in build.get("resolvedDependencies", [])
        if d.get("annotations", {}).get("pox.kind") in ("code", "workflow-source")
        and not str(d.get("name", "")).startswith("pox:")
    )
    image = str(binding.get("image_digest", ""))
    rule = str(build.get("externalParameters", {}).get("rule", "job"))
    checksum = hashlib.sha256(
        rfc8785.dumps({"image_digest": image, "rule": rule, "code": code})
    ).digest()
    return RecordInfo(
        index=index,
        digest=hashlib.sha256(line).digest(),
        rule=rule,
        app_checksum=checksum,
        image_digest=image,
        enclave=binding.get("enclave_challenge"),
    )


def checkpoint_state(bundle: RunBundle) -> tuple[int, bytes, list[bytes]]:
    """(size, root, lines) of the bundle's signed checkpoint and the lines it covers."""
    try:
        checkpoint, _ = parse_signed_note(bundle.checkpoint_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{bundle.checkpoint_path}: no checkpoint") from exc
    lines = read_log_lines(bundle.attestations_path).lines[: checkpoint.size]
    if len(lines) < checkpoint.size:
        raise BundleError(f"{bundle.path}: checkpoint covers more records than the log holds")
    root = merkle.root([merkle.leaf_hash(line) for line in lines]) if lines else b""
    if lines and root != checkpoint.root:
        raise BundleError(f"{bundle.path}: the log's root differs from its checkpoint")
    return checkpoint.size, checkpoint.root, lines


# -- off-chain ids ------------------------------------------------------------------------------


def _create2(registry: str, owner: str, salt: bytes) -> str:
    raw = keccak(
        b"\xff"
        + bytes.fromhex(registry[2:])
        + bytes.fromhex(Web3.to_checksum_address(owner)[2:])
        + salt
    )
    return str(Web3.to_checksum_address(raw[12:]))


def _mrenclave(image_digest: str) -> bytes:
    text = image_digest.removeprefix("sha256:")
    try:
        value = bytes.fromhex(text)
        if len(value) == 32:
            return value
    except ValueError:
        pass
    return hashlib.sha256(image_digest.encode()).digest()


def app_args(owner: str, rule: str, checksum: bytes, image_digest: str) -> tuple[Any, ...]:
    multiaddr = b"pox-app:sha256:" + checksum.hex().encode()
    return (owner, f"pox/{rule}", APP_TYPE, multiaddr, checksum, _mrenclave(image_digest))


def app_address(registry: str, args: tuple[Any, ...]) -> str:
    salt = keccak(abi_encode(["string", "string", "bytes", "bytes32", "bytes"], list(args[1:])))
    return _create2(registry, args[0], salt)


def pool_address(registry: str, owner: str) -> str:
    return _create2(registry, owner, keccak(POOL_DESCRIPTION.encode()))


def orders(
    *, app: str, pool: str, requester: str, volume: int, salt: bytes, params: str
) -> dict[str, dict[str, Any]]:
    tag = poco.TAG_TEE.to_bytes(32, "big")
    common = {"salt": salt, "volume": volume, "tag": tag, "requesterrestrict": ZERO}
    return {
        "AppOrder": {
            **common,
            "app": app,
            "appprice": 0,
            "datasetrestrict": ZERO,
            "workerpoolrestrict": ZERO,
        },
        "DatasetOrder": {
            "dataset": ZERO,
            "datasetprice": 0,
            "volume": 0,
            "tag": b"\x00" * 32,
            "apprestrict": ZERO,
            "workerpoolrestrict": ZERO,
            "requesterrestrict": ZERO,
            "salt": b"\x00" * 32,
        },
        "WorkerpoolOrder": {
            **common,
            "workerpool": pool,
            "workerpoolprice": 0,
            "category": 0,
            "trust": 1,
            "apprestrict": ZERO,
            "datasetrestrict": ZERO,
        },
        "RequestOrder": {
            "salt": salt,
            "volume": volume,
            "tag": tag,
            "app": app,
            "appmaxprice": 0,
            "dataset": ZERO,
            "datasetmaxprice": 0,
            "workerpool": pool,
            "workerpoolmaxprice": 0,
            "requester": requester,
            "category": 0,
            "trust": 1,
            "beneficiary": requester,
            "callback": ZERO,
            "params": params,
        },
    }


# -- plan ---------------------------------------------------------------------------------------


def _new_journal(bundle: RunBundle, client: ChainClient, deals: str) -> dict[str, Any]:
    return {
        "format": JOURNAL_FORMAT,
        "run_id": bundle.run_id,
        "registry_run_id": "0x" + run_id_bytes(bundle.run_id).hex(),
        "origin": bundle.meta.get("origin"),
        "profile": client.profile.name,
        "chain_id": client.profile.chain_id,
        "contracts": dict(client.addresses),
        "deals": deals,
        "accounts": {r: client.accounts.address(r) for r in ("requester", "scheduler", "worker")},
        "apps": {},
        "workerpool": None,
        "records": [],
        "deals_list": [],
        "actions": [],
        "anchors": [],
    }


def plan(doc: dict[str, Any], lines: list[bytes], size: int, root: bytes) -> int:
    """Add tasks for records [planned, size) and an anchor of (size, root); returns new actions."""
    before = len(doc["actions"])
    planned = len(doc["records"])
    deals_mode = doc["deals"]
    contracts = doc["contracts"]
    accounts = doc["accounts"]
    new = [record_info(i, lines[i]) for i in range(planned, size)]
    new_tasks: list[str] = []

    def add(kind: str, **params: Any) -> None:
        doc["actions"].append(
            {"id": len(doc["actions"]), "kind": kind, "status": "pending", "params": params}
        )

    if deals_mode != "none" and new:
        if doc["workerpool"] is None:
            doc["workerpool"] = pool_address(contracts["WorkerpoolRegistry"], accounts["scheduler"])
            add("create_pool", owner=accounts["scheduler"], address=doc["workerpool"])
        groups: list[list[RecordInfo]] = []
        if deals_mode == "per-job":
            groups = [[r] for r in new]
        else:
            keyed: dict[tuple[bytes, str | None], list[RecordInfo]] = {}
            for r in new:
                keyed.setdefault((r.app_checksum, r.enclave), []).append(r)
            groups = list(keyed.values())
        for group in groups:
            head = group[0]
            checksum_hex = "0x" + head.app_checksum.hex()
            if checksum_hex not in doc["apps"]:
                args = app_args(
                    accounts["requester"], head.rule, head.app_checksum, head.image_digest
                )
                address = app_address(contracts["AppRegistry"], args)
                doc["apps"][checksum_hex] = {"address": address, "rule": head.rule}
                add(
                    "register_app",
                    address=address,
                    owner=args[0],
                    name=args[1],
                    multiaddr="0x" + args[3].hex(),
                    checksum=checksum_hex,
                    mrenclave="0x" + args[5].hex(),
                )
            app = doc["apps"][checksum_hex]["address"]
            salt = hashlib.sha256(
                f"{doc['run_id']}/{deals_mode}/deal/{head.index}".encode()
            ).digest()
            params = json.dumps(
                {"pox_run": doc["run_id"], "records": [head.index, group[-1].index + 1]},
                separators=(",", ":"),
            )
            request = orders(
                app=app,
                pool=doc["workerpool"],
                requester=accounts["requester"],
                volume=len(group),
                salt=salt,
                params=params,
            )["RequestOrder"]
            request_hash = poco.order_hash(
                "RequestOrder", request, doc["chain_id"], contracts["PocoHub"]
            )
            deal = poco.deal_id(request_hash, 0)
            deal_hex = "0x" + deal.hex()
            doc["deals_list"].append(
                {"deal": deal_hex, "app": app, "volume": len(group), "first_record": head.index}
            )
            add(
                "match",
                deal=deal_hex,
                app=app,
                volume=len(group),
                salt="0x" + salt.hex(),
                params=params,
            )
            for idx, r in enumerate(group):
                task = "0x" + poco.task_id(deal, idx).hex()
                doc["records"].append(
                    {
                        "index": r.index,
                        "digest": "0x" + r.digest.hex(),
                        "deal": deal_hex,
                        "idx": idx,
                        "task": task,
                        "app": app,
                        "enclave": r.enclave,
                    }
                )
                new_tasks.append(task)
                if deals_mode == "per-job":
                    add("initialize", deal=deal_hex, idx=idx, task=task)
                    add("finalize", task=task, digest="0x" + r.digest.hex(), enclave=r.enclave)
            if deals_mode == "batched":
                for start in range(0, len(group), BATCH_MAX):
                    chunk = group[start : start + BATCH_MAX]
                    add(
                        "finalize_batch",
                        deal=deal_hex,
                        first=start,
                        count=len(chunk),
                        digests=["0x" + r.digest.hex() for r in chunk],
                        enclave=head.enclave,
                    )
        doc["records"].sort(key=lambda rec: rec["index"])
    elif new:
        doc["records"].extend(
            {"index": r.index, "digest": "0x" + r.digest.hex(), "task": None} for r in new
        )
    last = max((int(a["params"]["size"]) for a in _anchor_actions(doc)), default=0)
    if size > last:
        add("anchor", size=size, root="0x" + root.hex(), task_ids=new_tasks)
    return len(doc["actions"]) - before


def _anchor_actions(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in doc["actions"] if a["kind"] == "anchor"]


# -- execute ------------------------------------------------------------------------------------


def _b32(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _enclave_key(workdir: Path, address: str | None) -> str:
    if address is None:
        raise SettleError("a record binds no enclave challenge key (recorded before PoX chain)")
    path = workdir / ".pox" / "enclave-keys" / f"{Web3.to_checksum_address(address)}.key"
    try:
        return "0x" + path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise SettleError(
            f"{path}: the enclave challenge key is gone; its results cannot be signed"
        ) from exc


def _already_done(client: ChainClient, doc: dict[str, Any], action: dict[str, Any]) -> bool:
    p = action["params"]
    kind = action["kind"]
    if kind == "register_app":
        return bool(client.contract("AppRegistry").functions.isRegistered(p["address"]).call())
    if kind == "create_pool":
        registry = client.contract("WorkerpoolRegistry")
        return bool(registry.functions.isRegistered(p["address"]).call())
    if kind == "match":
        return int(client.hub.functions.viewDeal(_b32(p["deal"])).call()[12]) > 0
    if kind == "initialize":
        return int(client.hub.functions.viewTask(_b32(p["task"])).call()[0]) != 0
    if kind == "finalize":
        return int(client.hub.functions.viewTask(_b32(p["task"])).call()[0]) == 3
    if kind == "finalize_batch":
        done = int(client.hub.functions.viewBatchedCount(_b32(p["deal"])).call())
        return done >= int(p["first"]) + int(p["count"])
    if kind == "anchor":
        runs = client.runs.functions
        run_id = _b32(doc["registry_run_id"])
        if bytes(runs.rootAt(run_id, int(p["size"])).call()) == _b32(p["root"]):
            return True
        latest = int(runs.viewRun(run_id).call()[1])
        if latest > int(p["size"]):
            action["superseded"] = True
            return True  # a later checkpoint is anchored; this one can no longer be
        return False
    raise SettleError(f"unknown journal action {kind!r}")


def _call(
    client: ChainClient, doc: dict[str, Any], action: dict[str, Any], workdir: Path
) -> tuple[str, Any]:
    """(role, contract call) that performs `action`."""
    p = action["params"]
    kind = action["kind"]
    contracts = doc["contracts"]
    worker = client.accounts.address("worker")
    if kind == "register_app":
        return "requester", client.contract("AppRegistry").functions.createApp(
            p["owner"],
            p["name"],
            APP_TYPE,
            _b32(p["multiaddr"]),
            _b32(p["checksum"]),
            _b32(p["mrenclave"]),
        )
    if kind == "create_pool":
        return "scheduler", client.contract("WorkerpoolRegistry").functions.createWorkerpool(
            p["owner"], POOL_DESCRIPTION
        )
    if kind == "match":
        chain_id, hub = doc["chain_id"], contracts["PocoHub"]
        signers = {
            "AppOrder": "requester",
            "WorkerpoolOrder": "scheduler",
            "RequestOrder": "requester",
        }
        book = orders(
            app=p["app"],
            pool=doc["workerpool"],
            requester=doc["accounts"]["requester"],
            volume=int(p["volume"]),
            salt=_b32(p["salt"]),
            params=p["params"],
        )
        signed = {
            t: {
                **o,
                "sign": poco.sign_order(t, o, chain_id, hub, client.accounts.key(signers[t]))
                if t in signers
                else b"",
            }
            for t, o in book.items()
        }
        return "requester", client.hub.functions.matchOrders(
            signed["AppOrder"],
            signed["DatasetOrder"],
            signed["WorkerpoolOrder"],
            signed["RequestOrder"],
        )
    if kind == "initialize":
        return "worker", client.hub.functions.initialize(_b32(p["deal"]), int(p["idx"]))
    if kind == "finalize":
        task, digest = _b32(p["task"]), _b32(p["digest"])
        enclave = Web3.to_checksum_address(p["enclave"])
        auth = poco.sign_authorization(client.accounts.key("scheduler"), worker, task, enclave)
        seal = poco.sign_result(_enclave_key(workdir, enclave), worker, task, digest)
        uri = f"pox-run:{doc['run_id']}".encode()
        return "worker", client.hub.functions.contributeAndFinalize(
            task, digest, uri, b"", enclave, seal, auth
        )
    if kind == "finalize_batch":
        deal = _b32(p["deal"])
        first, count = int(p["first"]), int(p["count"])
        botfirst = 0  # deals matched here start at index 0 (fresh request order)
        digests = [_b32(d) for d in p["digests"]]
        root = poco.batch_results_root(deal, botfirst + first, digests)
        batch = poco.batch_id(deal, botfirst + first, count)
        enclave = Web3.to_checksum_address(p["enclave"])
        auth = poco.sign_authorization(client.accounts.key("scheduler"), worker, batch, enclave)
        seal = poco.sign_result(_enclave_key(workdir, enclave), worker, batch, root)
        uri = f"pox-run:{doc['run_id']}".encode()
        return "worker", client.hub.functions.contributeAndFinalizeBatch(
            deal, botfirst + first, count, root, uri, enclave, seal, auth
        )
    if kind == "anchor":
        return "requester", client.runs.functions.anchorRun(
            _b32(doc["registry_run_id"]),
            doc["origin"],
            int(p["size"]),
            _b32(p["root"]),
            f"pox-run:{doc['run_id']}",
            [_b32(t) for t in p["task_ids"]],
        )
    raise SettleError(f"unknown journal action {kind!r}")


def settle(
    bundle: RunBundle,
    client: ChainClient,
    *,
    deals: str = "batched",
    deadline: float,
) -> SettleResult:
    """Plan what the bundle's current checkpoint needs on chain, then send what is pending."""
    if deals not in DEALS_MODES:
        raise SettleError(f"deals mode {deals!r}: choose one of {', '.join(DEALS_MODES)}")
    result = SettleResult()
    with _journal_lock(bundle):
        doc = read_journal(bundle)
        if doc is None:
            doc = _new_journal(bundle, client, deals)
        elif int(doc["chain_id"]) != client.profile.chain_id or {
            k.lower(): v.lower() for k, v in doc["contracts"].items()
        } != {k.lower(): v.lower() for k, v in client.addresses.items()}:
            raise SettleError(
                f"run {bundle.run_id} is settled on chain {doc['chain_id']} (profile "
                f"{doc['profile']}), contracts {doc['contracts'].get('PocoHub')}; not on "
                f"{client.profile.name}"
            )
        size, root, lines = checkpoint_state(bundle)
        first_new = len(doc["actions"])
        if size > 0:
            plan(doc, lines, size, root)
        _save(bundle, doc)  # every pending action is on disk before anything is sent
        last_save = time.monotonic()
        for action in doc["actions"]:
            if action["status"] == "done":
                continue
            # Actions planned just now were never sent by anyone (the journal lock is held):
            # skip their on-chain check, except registrations (other runs may have made them) and
            # anchors (one call; a later checkpoint may already be anchored).
            fresh = action["id"] >= first_new and action["kind"] not in ALWAYS_CHECKED
            try:
                if not fresh and retry(
                    functools.partial(_already_done, client, doc, action),
                    deadline=deadline,
                    what=f"checking {action['kind']} #{action['id']}",
                ):
                    action["status"] = "done"
                    action["noop"] = True
                    result.noop += 1
                    continue
                role, call = _call(client, doc, action, bundle.workdir)
                tx = client.send(role, call, deadline=deadline)
            except ChainUnavailable as exc:
                result.error = str(exc)
                break
            except ChainReverted as exc:
                action["status"] = "failed"
                action["error"] = str(exc)
                _save(bundle, doc)
                result.error = f"{action['kind']} #{action['id']}: {exc}"
                break
            except Exception as exc:  # the node dropped mid-call (web3 raises many types)
                if not is_transient(exc):
                    raise
                result.error = f"chain unavailable ({exc})"
                break
            action.update(
                status="done",
                tx_hash=tx.tx_hash,
                block=tx.block_number,
                gas_used=tx.gas_used,
                role=role,
            )
            if action["kind"] == "anchor":
                block = client.w3.eth.get_block(tx.block_number)
                record = {
                    "size": action["params"]["size"],
                    "root": action["params"]["root"],
                    "tx_hash": tx.tx_hash,
                    "block": tx.block_number,
                    "timestamp": int(block["timestamp"]),
                }
                doc["anchors"].append(record)
                result.anchored_size = int(action["params"]["size"])
            result.sent += 1
            result.gas_used += tx.gas_used
            result.txs.append({"kind": action["kind"], "tx_hash": tx.tx_hash, "gas": tx.gas_used})
            if action["kind"] == "anchor" or time.monotonic() - last_save > 1.0:
                _save(bundle, doc)
                last_save = time.monotonic()
        result.pending = sum(1 for a in doc["actions"] if a["status"] != "done")
        _save(bundle, doc)
    return result
