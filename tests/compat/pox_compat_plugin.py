"""Pytest plugin loaded into Snakemake's own test suite to run it under a chosen executor.

Owns three things, all driven by environment variables so `scripts/compat.py` and `tests/compat`
start the same suite the same way:
- `POX_COMPAT_EXECUTOR` (`local` or `pox`): every `tests/common.py::run(...)` call that would use
  the local executor uses this one instead (for `pox`: `ExecutorSettings(chain="none")`, the sim
  backend); `run(shellcmd="snakemake ...")` calls get `--executor pox --pox-chain none`;
- exclusion of the tests that need conda, apptainer/singularity, environment modules, cloud
  storage or the network (by marker and by the deployment method named in the test's source),
  whatever the machine offers, so the selection is the same here and in CI;
- `POX_COMPAT_RESULTS`: a JSON file receiving one record per test (outcome, seconds, cause).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

#: Marker names and skip reasons (lower case, substring) that put a test outside the selection.
_EXCLUDED_MARKERS = {
    "needs_envmodules": "environment modules",
    "needs_s3": "cloud storage (S3)",
}
_EXCLUDED_REASONS = {
    "conda": "conda",
    "apptainer": "apptainer/singularity",
    "gcloud": "cloud storage (Google Cloud)",
    "azbatch": "cloud (Azure Batch)",
    "zenodo": "network (Zenodo)",
    "internet connection": "network",
}
_EXCLUDED_SOURCE = {
    "DeploymentMethod.CONDA": "conda",
    "DeploymentMethod.APPTAINER": "apptainer/singularity",
    "DeploymentMethod.ENV_MODULES": "environment modules",
    "s3_storage": "cloud storage (S3)",
}


def exclusion_reason(item: pytest.Item) -> str | None:
    """Why `item` is outside the selection, or None when it belongs to it."""
    for mark in item.iter_markers():
        if mark.name in _EXCLUDED_MARKERS:
            return _EXCLUDED_MARKERS[mark.name]
        if mark.name in ("skipif", "skip"):
            reason = str(mark.kwargs.get("reason", "")).lower()
            for needle, why in _EXCLUDED_REASONS.items():
                if needle in reason:
                    return why
    function = getattr(item, "function", None)
    if function is not None:
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            source = ""
        for needle, why in _EXCLUDED_SOURCE.items():
            if needle in source:
                return why
    return None


def _wrap_run(original: Any, executor: str) -> Any:
    """`common.run` with `executor` in place of the local executor."""
    if getattr(original, "_pox_compat", False):
        return original

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        uses_local = kwargs.get("executor", "local") == "local" and kwargs.get("cluster") is None
        shellcmd = kwargs.get("shellcmd")
        if executor == "pox" and uses_local:
            if shellcmd:
                if "--executor" not in shellcmd and " -e " not in shellcmd:
                    kwargs["shellcmd"] = re.sub(
                        r"^snakemake\b", "snakemake --executor pox --pox-chain none", shellcmd
                    )
            else:
                from pox_executor.plugin import ExecutorSettings

                kwargs["executor"] = "pox"
                kwargs["executor_settings"] = ExecutorSettings(chain="none")
        return original(*args, **kwargs)

    run._pox_compat = True  # type: ignore[attr-defined]
    return run


_records: dict[str, dict[str, Any]] = {}
_excluded: dict[str, str] = {}


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    executor = os.environ.get("POX_COMPAT_EXECUTOR", "local")
    if executor not in ("local", "pox"):
        raise pytest.UsageError(f"POX_COMPAT_EXECUTOR must be local or pox, not {executor!r}")
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        why = exclusion_reason(item)
        if why is None:
            kept.append(item)
        else:
            _excluded[item.name] = why
            deselected.append(item)
        module = getattr(item, "module", None)
        if module is not None and callable(getattr(module, "run", None)):
            if getattr(module.run, "__module__", "").endswith("common"):
                module.run = _wrap_run(module.run, executor)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


_JOB_LOG = re.compile(r"job log: (/\S+\.log)")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b[^:]*:\s*\S")
_ERROR_WORDS = re.compile(r"error|exception|denied|not found|read-only", re.I)


def _cause(report: pytest.TestReport) -> str:
    """One line saying why the test failed: a failed pox job's last log line when there is one,
    else the exception's message."""
    captured = "\n".join(text for _, text in report.sections) + "\n" + report.longreprtext
    for path in _JOB_LOG.findall(captured):
        try:
            lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        useful = [line.strip() for line in lines if line.strip()]
        # The most specific line: an exception with a message, else any error-looking line.
        specific = [line for line in useful if _EXCEPTION_LINE.match(line)]
        errors = [line for line in useful if _ERROR_WORDS.search(line)]
        chosen = specific or errors or useful
        if chosen:
            return f"job: {chosen[-1]}"[:300]
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "failed")[:300]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = report.nodeid.split("::")[-1]
    record = _records.setdefault(name, {"outcome": "passed", "seconds": 0.0, "cause": ""})
    record["seconds"] = round(record["seconds"] + report.duration, 3)
    if report.skipped and record["outcome"] == "passed":
        record["outcome"] = "skipped"
        crash = report.longrepr
        if isinstance(crash, tuple) and len(crash) == 3:
            record["cause"] = str(crash[2])[:300]
    elif report.failed:
        if record["outcome"] != "failed":
            cause = _cause(report)
            record["cause"] = cause if report.when == "call" else f"{report.when}: {cause}"
        record["outcome"] = "failed"
    if report.when == "teardown":
        _dump()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _dump()


def _dump() -> None:
    target = os.environ.get("POX_COMPAT_RESULTS")
    if not target:
        return
    document = {
        "executor": os.environ.get("POX_COMPAT_EXECUTOR", "local"),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tests": _records,
        "excluded": _excluded,
    }
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
