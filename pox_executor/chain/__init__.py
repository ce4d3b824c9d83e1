"""PoX on chain: contract artifacts, chain profiles and accounts, a bloxberg-like local devnet,
and settling runs (PoCo deals per job, run checkpoints anchored in the WorkflowRunRegistry).

Modules: `artifacts` (ABI and bytecode exported from `contracts/` by
`contracts/scripts/export-artifacts.py`), `devnet` (anvil configured like bloxberg), `localnet`
(the `local` profile's persistent node and deployment), `deploy` (legacy-transaction
deployment), `profiles` and `accounts` (which chain, which keys), `client` (web3, the one
transaction sender, retries), `poco` (PoCo's off-chain messages), `ids` (off-chain ids and
orders), `jobs` (the one reader of log records), `journal` (typed `chain.json`), `planning`,
`actions` (each action's on-chain check beside its call), `settle` (the settlement loop) and
`runner` (settling while a workflow runs). Talks to chains only through web3.
"""

from pox_executor.chain.artifacts import Artifact, load_artifact
from pox_executor.chain.devnet import Devnet, DevnetError, start_devnet

__all__ = ["Artifact", "Devnet", "DevnetError", "load_artifact", "start_devnet"]
