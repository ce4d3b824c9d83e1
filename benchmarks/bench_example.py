"""The example workflow (workflows/variant-calling) under `--executor pox` against the local
executor, measured in one run (target <= 1.1x).

Each repeat copies the workflow to a clean directory per mode and runs it with `--cores 2`;
PoX runs with `--pox-chain none`. Writes benchmarks/results/example.json.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results
from _versus_local import POX, compare, fresh_copy, print_ratios, run_snakemake

EXAMPLE = Path(__file__).resolve().parents[1] / "workflows" / "variant-calling"
TARGET = 1.1
MODES = {"local": [], "pox_sim": POX}


def main() -> None:
    print(f"bench_example: {EXAMPLE.name}, --cores 2")
    with tempfile.TemporaryDirectory(prefix="pox-bench-example-") as tmp:
        root = Path(tmp)
        result = compare(
            {
                name: (
                    lambda repeat, name=name, args=args: run_snakemake(
                        fresh_copy(EXAMPLE, root / f"{name}-{repeat}"), args
                    )
                )
                for name, args in MODES.items()
            }
        )
    print_ratios(result, TARGET)
    write_results("example", {"workflow": EXAMPLE.name, "target_ratio": TARGET, **result})


if __name__ == "__main__":
    main()
