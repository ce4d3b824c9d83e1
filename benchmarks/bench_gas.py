"""Gas per job of PoX's chain paths, on anvil started as bloxberg (chain id 8995, Istanbul,
8,000,000 block gas limit, legacy transactions).

Measures the per-task path (matchOrders + initialize + contributeAndFinalize for one task), the
batched path at 10, 100 and 1,000 tasks (one deal, batches of at most `--batch-size` tasks, one
anchor of the run with every task id), and anchoring alone. Prints each as gas per job and as
a ratio to iExec's published single-task TEE deal (matchOrders 760,843 + initialize 225,506 +
contributeAndFinalize 642,656 = 1,629,005 gas), and the batched path also against the per-task
path measured in the same run. Checks the targets (per-task <= 0.5 x iExec, batched <= 5,000
gas per task at 1,000 tasks, every transaction < 8,000,000 gas), writes
benchmarks/results/gas.json and exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results

from pox_executor.chain import poco
from pox_executor.chain.deploy import PoxDeployment, Receipt, decode_events, deploy_pox, transact
from pox_executor.chain.devnet import BLOXBERG_BLOCK_GAS_LIMIT, start_devnet

IEXEC_MATCH_ORDERS = 760_843
IEXEC_INITIALIZE = 225_506
IEXEC_CONTRIBUTE_AND_FINALIZE = 642_656
IEXEC_TEE_TASK = IEXEC_MATCH_ORDERS + IEXEC_INITIALIZE + IEXEC_CONTRIBUTE_AND_FINALIZE
ZERO = "0x" + "00" * 20
TEE_SCONE = (0x3).to_bytes(32, "big")
# Realistic sizes: a Snakemake rule's parameters and an IPFS result address.
PARAMS = '{"rule":"bwa_map","wildcards":{"sample":"A"},"threads":4}'
RESULTS_URI = b"ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


class Market:
    """A deployed PoX hub with one app, dataset and workerpool and funded parties."""

    def __init__(self, w3: Web3, keys: list[str]) -> None:
        self.w3 = w3
        roles = ["deployer", "app_owner", "dataset_owner", "scheduler", "requester", "worker"]
        self.keys = dict(zip(roles, keys, strict=False))
        self.addr = {r: Account.from_key(k).address for r, k in self.keys.items()}
        self.enclave_key = "0x" + hashlib.sha256(b"pox bench enclave").hexdigest()
        self.enclave = Account.from_key(self.enclave_key).address
        self.pox: PoxDeployment = deploy_pox(w3, self.keys["deployer"], category_time_ref_s=3600)
        self.transactions: list[tuple[str, int]] = [
            (f"deploy {name}", r.gas_used) for name, r in self.pox.receipts.items()
        ]
        app = self.send(
            "createApp",
            "app_owner",
            self.pox.apps.functions.createApp(
                self.addr["app_owner"],
                "pox-python",
                "DOCKER",
                b"docker.io/pox/python",
                b"\x01" * 32,
                b"\x02" * 32,
            ),
        )
        self.app = decode_events(self.pox.apps.events.AppCreated(), app)[0]["app"]
        dataset = self.send(
            "createDataset",
            "dataset_owner",
            self.pox.datasets.functions.createDataset(
                self.addr["dataset_owner"], "reads", b"ipfs://reads", b"\x03" * 32
            ),
        )
        self.dataset = decode_events(self.pox.datasets.events.DatasetCreated(), dataset)[0][
            "dataset"
        ]
        pool = self.send(
            "createWorkerpool",
            "scheduler",
            self.pox.workerpools.functions.createWorkerpool(self.addr["scheduler"], "tee pool"),
        )
        self.workerpool = decode_events(self.pox.workerpools.events.WorkerpoolCreated(), pool)[0][
            "workerpool"
        ]
        for role in ("requester", "scheduler"):
            self.send("deposit", role, self.pox.hub.functions.deposit(), value=10**21)
        self.salt = 0

    def send(self, label: str, role: str, call: Any, value: int = 0) -> Receipt:
        receipt = transact(self.w3, self.keys[role], call, value=value)
        self.transactions.append((label, receipt.gas_used))
        return receipt

    def match(self, volume: int, *, batched: bool = False) -> tuple[bytes, int, int]:
        """Match fresh signed orders for `volume` tasks; (dealid, first index, gas)."""
        mode_tag = (
            int.from_bytes(TEE_SCONE, "big") | (poco.TAG_BATCHED if batched else 0)
        ).to_bytes(32, "big")
        self.salt += 1
        salt = self.salt.to_bytes(32, "big")
        chain_id, hub = self.w3.eth.chain_id, self.pox.hub.address
        requester = self.addr["requester"]
        free = {"salt": salt, "volume": volume, "tag": TEE_SCONE, "requesterrestrict": ZERO}
        orders: dict[str, dict[str, Any]] = {
            "AppOrder": {
                **free,
                "app": self.app,
                "appprice": 10**9,
                "datasetrestrict": ZERO,
                "workerpoolrestrict": ZERO,
            },
            "DatasetOrder": {
                **free,
                "dataset": self.dataset,
                "datasetprice": 10**9,
                "apprestrict": ZERO,
                "workerpoolrestrict": ZERO,
            },
            "WorkerpoolOrder": {
                **free,
                "tag": mode_tag,
                "workerpool": self.workerpool,
                "workerpoolprice": 10**10,
                "category": 0,
                "trust": 1,
                "apprestrict": ZERO,
                "datasetrestrict": ZERO,
            },
            "RequestOrder": {
                "salt": salt,
                "volume": volume,
                "tag": mode_tag,
                "app": self.app,
                "appmaxprice": 10**9,
                "dataset": self.dataset,
                "datasetmaxprice": 10**9,
                "workerpool": ZERO,
                "workerpoolmaxprice": 10**10,
                "requester": requester,
                "category": 0,
                "trust": 1,
                "beneficiary": requester,
                "callback": ZERO,
                "params": PARAMS,
            },
        }
        signers = {
            "AppOrder": "app_owner",
            "DatasetOrder": "dataset_owner",
            "WorkerpoolOrder": "scheduler",
            "RequestOrder": "requester",
        }
        signed = {
            t: {**o, "sign": poco.sign_order(t, o, chain_id, hub, self.keys[signers[t]])}
            for t, o in orders.items()
        }
        receipt = self.send(
            "matchOrders",
            "requester",
            self.pox.hub.functions.matchOrders(
                signed["AppOrder"],
                signed["DatasetOrder"],
                signed["WorkerpoolOrder"],
                signed["RequestOrder"],
            ),
        )
        event = decode_events(self.pox.hub.events.OrdersMatched(), receipt)[0]
        first = self.pox.hub.functions.viewDeal(event["dealid"]).call()[11]
        return bytes(event["dealid"]), int(first), receipt.gas_used


def per_task_path(market: Market) -> dict[str, int]:
    """Gas of one TEE task end to end, as PoCo runs it."""
    deal, first, match_gas = market.match(1)
    init = market.send("initialize", "worker", market.pox.hub.functions.initialize(deal, first))
    task = poco.task_id(deal, first)
    digest = hashlib.sha256(b"result of task").digest()
    worker = market.addr["worker"]
    auth = poco.sign_authorization(market.keys["scheduler"], worker, task, market.enclave)
    seal = poco.sign_result(market.enclave_key, worker, task, digest)
    done = market.send(
        "contributeAndFinalize",
        "worker",
        market.pox.hub.functions.contributeAndFinalize(
            task, digest, RESULTS_URI, b"", market.enclave, seal, auth
        ),
    )
    return {
        "matchOrders": match_gas,
        "initialize": init.gas_used,
        "contributeAndFinalize": done.gas_used,
        "total": match_gas + init.gas_used + done.gas_used,
    }


def batched_path(market: Market, tasks: int, batch_size: int, run_number: int) -> dict[str, Any]:
    """Gas of `tasks` tasks in one deal, finalized in batches, plus anchoring the run."""
    deal, first, match_gas = market.match(tasks, batched=True)
    worker = market.addr["worker"]
    batch_gas: list[int] = []
    done = 0
    while done < tasks:
        count = min(batch_size, tasks - done)
        start = first + done
        digests = [hashlib.sha256(f"result {start + i}".encode()).digest() for i in range(count)]
        root = poco.batch_results_root(deal, start, digests)
        batch = poco.batch_id(deal, start, count)
        auth = poco.sign_authorization(market.keys["scheduler"], worker, batch, market.enclave)
        seal = poco.sign_result(market.enclave_key, worker, batch, root)
        receipt = market.send(
            "contributeAndFinalizeBatch",
            "worker",
            market.pox.hub.functions.contributeAndFinalizeBatch(
                deal, start, count, root, RESULTS_URI, market.enclave, seal, auth
            ),
        )
        batch_gas.append(receipt.gas_used)
        done += count
    task_ids = [poco.task_id(deal, first + i) for i in range(tasks)]
    run_id = hashlib.sha256(f"bench run {run_number}".encode()).digest()
    anchor = market.send(
        "anchorRun (with task ids)",
        "requester",
        market.pox.runs.functions.anchorRun(
            run_id,
            f"pox/run/bench-{run_number}",
            tasks,
            hashlib.sha256(b"root").digest(),
            "ipfs://bundle",
            task_ids,
        ),
    )
    total = match_gas + sum(batch_gas) + anchor.gas_used
    return {
        "tasks": tasks,
        "batch_size": batch_size,
        "batches": len(batch_gas),
        "matchOrders": match_gas,
        "contributeAndFinalizeBatch_each": batch_gas,
        "anchorRun": anchor.gas_used,
        "total": total,
        "gas_per_task": total / tasks,
    }


def anchoring(market: Market) -> dict[str, int]:
    """Gas of anchoring a run's checkpoint, first and incremental, without task ids."""
    run_id = hashlib.sha256(b"bench anchoring").digest()
    runs = market.pox.runs.functions
    first = market.send(
        "anchorRun (first)",
        "requester",
        runs.anchorRun(run_id, "pox/run/anchoring", 100, b"\x01" * 32, "ipfs://bundle", []),
    )
    again = market.send(
        "anchorRun (incremental)",
        "requester",
        runs.anchorRun(run_id, "pox/run/anchoring", 200, b"\x02" * 32, "ipfs://bundle", []),
    )
    return {"first": first.gas_used, "incremental": again.gas_used}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=100, help="tasks per batch (default 100)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()

    with start_devnet() as net:
        w3 = Web3(Web3.HTTPProvider(net.rpc_url))
        market = Market(w3, net.private_keys)
        per_task_path(market)  # first touch of every account's storage, not steady state
        per_task = per_task_path(market)
        batched = [batched_path(market, n, args.batch_size, i) for i, n in enumerate(args.sizes)]
        anchors = anchoring(market)

    print(f"iExec published single-task TEE deal: {IEXEC_TEE_TASK:,} gas")
    print(f"{'path':<40}{'gas per job':>14}{'vs iExec':>10}{'vs per-task':>13}")
    total = per_task["total"]
    print(f"{'per-task (match+init+contribute)':<40}{total:>14,}{total / IEXEC_TEE_TASK:>10.3f}")
    for row in batched:
        label = f"batched, {row['tasks']} tasks ({row['batches']} batches)"
        per = row["gas_per_task"]
        print(
            f"{label:<40}{per:>14,.0f}{per / IEXEC_TEE_TASK:>10.4f}{per / per_task['total']:>13.4f}"
        )
    first, incremental = anchors["first"], anchors["incremental"]
    print(f"{'anchorRun (first / incremental)':<40}{first:>14,} / {incremental:,}")

    largest_tx = max(transactions_gas := [gas for _, gas in market.transactions])
    at_1000 = next((row for row in batched if row["tasks"] == 1000), None)
    checks = {
        "per_task_at_most_half_of_iexec": per_task["total"] <= IEXEC_TEE_TASK / 2,
        "batched_at_most_5000_per_task_at_1000": at_1000 is not None
        and at_1000["gas_per_task"] <= 5000,
        "every_tx_below_block_gas_limit": largest_tx < BLOXBERG_BLOCK_GAS_LIMIT,
    }
    count = len(transactions_gas)
    print(
        f"largest of {count} transactions: {largest_tx:,} gas (limit {BLOXBERG_BLOCK_GAS_LIMIT:,})"
    )
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    write_results(
        "gas",
        {
            "chain": {
                "chain_id": 8995,
                "hardfork": "istanbul",
                "block_gas_limit": BLOXBERG_BLOCK_GAS_LIMIT,
            },
            "iexec_published": {
                "matchOrders": IEXEC_MATCH_ORDERS,
                "initialize": IEXEC_INITIALIZE,
                "contributeAndFinalize": IEXEC_CONTRIBUTE_AND_FINALIZE,
                "total": IEXEC_TEE_TASK,
            },
            "per_task": {**per_task, "ratio_to_iexec": per_task["total"] / IEXEC_TEE_TASK},
            "batched": [
                {
                    **row,
                    "ratio_to_iexec": row["gas_per_task"] / IEXEC_TEE_TASK,
                    "ratio_to_per_task": row["gas_per_task"] / per_task["total"],
                }
                for row in batched
            ],
            "anchoring": anchors,
            "largest_transaction_gas": largest_tx,
            "transactions": [{"label": label, "gas": gas} for label, gas in market.transactions],
            "checks": checks,
        },
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
