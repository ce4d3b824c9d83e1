"""Snakemake's own executor-plugin suite, run against `--executor pox`.

`TestWorkflowsLocalStorageBase` runs Snakemake's bundled test workflows (a simple DAG, a group
workflow) in-process through the plugin, with the default `ExecutorSettings` (sim backend,
bubblewrap isolation) except `chain="none"` (no devnet; tests/chain covers the chain), exactly
as the Snakemake plugin catalog expects of every executor.
"""

from typing import Optional

import snakemake.common.tests
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from pox_executor.plugin import ExecutorSettings


class TestWorkflows(snakemake.common.tests.TestWorkflowsLocalStorageBase):
    __test__ = True

    def get_executor(self) -> str:
        return "pox"

    def get_executor_settings(self) -> Optional[ExecutorSettingsBase]:  # noqa: UP045
        return ExecutorSettings(chain="none")  # no devnet here; tests/chain covers it
