"""The Snakefile side of a confidential dataset: `confidential(path)` names it as inputs.

    rule r:
        input: **confidential("data/cohort.vcf.pox-enc"), script="scripts/x.py"
        shell: "pox dataset open --broker {params.broker} {input.dataset} -- "
               "python3 {input.script} {{}}"

It returns the ciphertext (`dataset`) and its manifest (`dataset_manifest`) as named inputs, so
Snakemake tracks both and PoX records both digests (and, from the manifest, the dataset's
address and CID) in the job's statement. Plain Python, no Snakemake import: usable anywhere.
"""

from __future__ import annotations

from pox_executor.datasets.manifest import MANIFEST_SUFFIX


def confidential(ciphertext: str, *, name: str = "dataset") -> dict[str, str]:
    """Named inputs for the encrypted dataset at `ciphertext` and its manifest beside it."""
    return {name: ciphertext, f"{name}_manifest": ciphertext + MANIFEST_SUFFIX}
