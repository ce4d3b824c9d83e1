"""PoX on chain: compiled contract artifacts, a bloxberg-like local devnet and deployment.

Owns `artifacts/` (ABI and bytecode exported from `contracts/` by
`contracts/scripts/export-artifacts.py`), `artifacts.py` (loading them), `devnet.py` (starting
and stopping anvil configured like bloxberg) and `deploy.py` (legacy-transaction deployment of
the PoX contracts). Talks to chains only through web3; holds no protocol logic of its own.
"""

from pox_executor.chain.artifacts import Artifact, load_artifact
from pox_executor.chain.devnet import Devnet, DevnetError, start_devnet

__all__ = ["Artifact", "Devnet", "DevnetError", "load_artifact", "start_devnet"]
