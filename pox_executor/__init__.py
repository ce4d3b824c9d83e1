"""PoX (Proof of eXecution): run every Snakemake job in a TEE and leave a verifiable record.

Public surface: `pox_executor.plugin` (Snakemake glue), `pox_executor.audit` (verify, prove, show),
`pox_executor.cli` (the `pox` command). Everything else is internal and free to move.
"""

__version__ = "0.1.0"
