"""The package Snakemake discovers for `--executor pox`: a re-export of `pox_executor.plugin`."""

from pox_executor.plugin import Executor, ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
