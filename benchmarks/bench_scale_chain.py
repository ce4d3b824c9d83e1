"""Chain cost of a 1,000,000-job run: gas, transactions and bloxberg block space, measured for one
settlement round and extrapolated (docs/scale.md).

A run's settlement is planned per anchor (`--pox-anchor-every`, default every 1,000 records):
each round matches one batched deal per (app, enclave challenge) group of its new jobs,
finalizes them in batches of at most 500 tasks (`chain.planning.BATCH_MAX`), and anchors the
checkpoint with the round's task ids. This script measures such a round on anvil started as
bloxberg (chain id 8995, Istanbul, 8,000,000 gas per block), with bench_gas.py's market:
one rule (one group) of 1,000 jobs, and the per-task path for comparison (matchOrders +
initialize + contributeAndFinalize per job, `--pox-deals per-job`). The baseline is that
per-task path measured in the same run. Extrapolation: 1,000 rounds for 1,000,000 jobs, with
1 and with `--rules` groups per round (each extra group adds a matchOrders and at least one
batch); block time 5 s. Writes benchmarks/results/scale_chain.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results
from bench_gas import Market, batched_path, per_task_path
from web3 import Web3

from pox_executor.chain.devnet import BLOXBERG_BLOCK_GAS_LIMIT, start_devnet
from pox_executor.chain.planning import BATCH_MAX

TARGET_JOBS = 1_000_000
BLOCK_TIME_S = 5


def extrapolate(round_gas: dict[str, Any], jobs: int, per_round: int, rules: int) -> dict[str, Any]:
    """Gas, transactions and full blocks of `jobs` jobs settled in rounds of `per_round`."""
    rounds = math.ceil(jobs / per_round)
    per_rule = per_round / rules
    batches_per_group = math.ceil(per_rule / BATCH_MAX)
    batch_gas = sum(round_gas["contributeAndFinalizeBatch_each"]) / round_gas["batches"]
    gas_per_round = (
        rules * round_gas["matchOrders"]
        + rules * batches_per_group * batch_gas
        + round_gas["anchorRun"]
    )
    total = rounds * gas_per_round
    transactions = rounds * (rules + rules * batches_per_group + 1)
    blocks = total / BLOXBERG_BLOCK_GAS_LIMIT
    return {
        "jobs": jobs,
        "rules_per_round": rules,
        "rounds": rounds,
        "gas_total": total,
        "gas_per_job": total / jobs,
        "transactions": transactions,
        "full_blocks": blocks,
        "block_space_hours": blocks * BLOCK_TIME_S / 3600,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-round", type=int, default=1000, help="records per anchor")
    parser.add_argument("--rules", type=int, default=10, help="groups per round, second case")
    args = parser.parse_args()

    with start_devnet() as net:
        w3 = Web3(Web3.HTTPProvider(net.rpc_url))
        market = Market(w3, net.private_keys)
        per_task_path(market)  # first touch of every account's storage, not steady state
        per_task = per_task_path(market)
        round_gas = batched_path(market, args.per_round, BATCH_MAX, 0)
    largest = max(gas for label, gas in market.transactions if not label.startswith("deploy"))

    one = extrapolate(round_gas, TARGET_JOBS, args.per_round, 1)
    many = extrapolate(round_gas, TARGET_JOBS, args.per_round, args.rules)
    per_job_total = per_task["total"] * TARGET_JOBS
    per_job_blocks = per_job_total / BLOXBERG_BLOCK_GAS_LIMIT
    anchor_ids_gas = round_gas["anchorRun"] / args.per_round
    max_ids = int((BLOXBERG_BLOCK_GAS_LIMIT - 100_000) / anchor_ids_gas)

    print(
        f"one round of {args.per_round:,} jobs: matchOrders {round_gas['matchOrders']:,}, "
        f"{round_gas['batches']} batches {round_gas['contributeAndFinalizeBatch_each']}, "
        f"anchorRun with {args.per_round:,} task ids {round_gas['anchorRun']:,} gas "
        f"= {round_gas['gas_per_task']:,.0f} gas per job"
    )
    print(f"per-task path (baseline): {per_task['total']:,} gas per job")
    print(f"\nfor {TARGET_JOBS:,} jobs, anchored every {args.per_round:,} records:")
    for case in (one, many):
        ratio = case["gas_per_job"] / per_task["total"]
        print(
            f"  batched, {case['rules_per_round']} rule(s) per round: "
            f"{case['gas_total'] / 1e9:.2f} G gas ({case['gas_per_job']:,.0f} per job, "
            f"{ratio:.4f}x per-task), {case['transactions']:,} transactions, "
            f"{case['full_blocks']:,.0f} full blocks = {case['block_space_hours']:.1f} h of "
            "bloxberg's block space"
        )
    print(
        f"  per-job deals: {per_job_total / 1e9:,.0f} G gas, {3 * TARGET_JOBS:,} transactions, "
        f"{per_job_blocks:,.0f} full blocks = {per_job_blocks * BLOCK_TIME_S / 86400:.1f} days"
    )
    print(
        f"largest transaction {largest:,} gas; an anchor costs about {anchor_ids_gas:,.0f} gas "
        f"per task id, so one anchor fits at most about {max_ids:,} task ids in a block"
    )
    write_results(
        "scale_chain",
        {
            "round": round_gas,
            "per_task": per_task,
            "extrapolated": {"one_rule": one, "many_rules": many},
            "per_job_deals": {
                "gas_total": per_job_total,
                "transactions": 3 * TARGET_JOBS,
                "full_blocks": per_job_blocks,
            },
            "largest_transaction_gas": largest,
            "anchor_gas_per_task_id": anchor_ids_gas,
            "max_task_ids_per_anchor": max_ids,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
