"""`--pox-dispatch slurm`: each job is a SLURM batch job running `pox jobstep` on a node.

Follows snakemake-executor-plugin-slurm's conventions: `sbatch --parsable` with the run id as
job name, its resource names (`slurm_partition`, `slurm_account`, `runtime` in minutes, `mem_mb`,
`mem_mb_per_cpu`, `cpus_per_task` or the rule's threads, `constraint`, `qos`, `nodes`,
`slurm_extra`), status polling with `sacct` and, where accounting storage is disabled (no
slurmdbd), with `squeue` then `scontrol show job` for jobs squeue no longer lists, and `scancel`
to cancel. The working directory must be on a filesystem the nodes share with the head.

The head writes a job ticket per attempt, submits it, and waits until either the collector has
the attempt's signed statement (posted over HTTP by the node) or SLURM says the job ended; then
it collects the spooled copy if HTTP did not deliver it. A job that ended without leaving a
statement (killed with SIGKILL, node lost, never started) is recorded by the head, with its
session key, as a failed attempt naming the SLURM state, so Snakemake's retry starts a new one.
All of that but the SLURM commands is `dispatch.cluster`'s, shared with the Kubernetes dispatcher.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.dispatch.cluster import ClusterDispatcher, Waiting, producers_for
from pox_executor.dispatch.protocol import remove_quietly
from pox_executor.enclave.runtime import JobSpec
from pox_executor.errors import PoxError, UsageError
from pox_executor.provenance.recorder import JobFacts, RunRecorder

log = logging.getLogger(__name__)

# SLURM job states after which the job runs no more (squeue/sacct long names).
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "REVOKED",
        "SPECIAL_EXIT",
        "PURGED",
    }
)
PURGED = "PURGED"  # our name for a job slurmctld no longer knows


COLLECTOR_HOST_VARIABLE = "POX_COLLECTOR_HOST"
COLLECT_GRACE_VARIABLE = "POX_COLLECT_GRACE_S"


class SlurmError(PoxError):
    """sbatch, squeue or scontrol failed (the message quotes SLURM's own error)."""


@dataclass(frozen=True)
class DispatchOptions:
    """What every ticket of the run carries (the executor's backend settings)."""

    backend: str
    isolate: bool
    default_image: str | None
    shared_home: bool
    # where the head's collector listens: loopback unless nodes on other hosts must reach it
    collector_host: str = field(
        default_factory=lambda: os.environ.get(COLLECTOR_HOST_VARIABLE, "127.0.0.1")
    )
    poll_interval_s: float = 1.0
    # after SLURM says a job ended, how long its statement may still take to arrive (a jobstep
    # stopped by SIGTERM records the attempt within the cluster's KillWait)
    collect_grace_s: float = field(
        default_factory=lambda: float(os.environ.get(COLLECT_GRACE_VARIABLE, "40"))
    )
    python: str = field(default_factory=lambda: sys.executable)
    sbatch_extra: tuple[str, ...] = ()


@dataclass(kw_only=True)
class _Waiting(Waiting):
    """A SLURM job the head waits for (`state`: its finished SLURM state, once seen)."""

    slurm_id: str
    node: str = ""


def sbatch_arguments(
    facts: Sequence[JobFacts], spec: JobSpec, *, job_name: str, output: Path
) -> list[str]:
    """sbatch options for a job, from its resources, as the SLURM executor plugin names them.

    The comment says which attempt it is (`pox <submission id> rule_<rule>_wildcards_<values>`,
    the plugin's form after our id), so `squeue --format=%k` shows it.
    """
    first = facts[0]
    wildcards = "_".join(str(v) for v in first.wildcards.values())
    comment = f"pox {spec.invocation_id} rule_{first.rule}_wildcards_{wildcards}"
    resources: dict[str, Any] = {}
    for f in facts:  # a group's members: the first that sets a resource wins
        for name, value in f.resources.items():
            resources.setdefault(name, value)
    args = [
        "--parsable",
        "--job-name",
        job_name,
        "--output",
        str(output),
        "--export=ALL",
        "--comment",
        comment,
        "--chdir",
        str(spec.workdir),
    ]
    named = {
        "slurm_partition": "--partition",
        "slurm_account": "--account",
        "constraint": "--constraint",
        "qos": "--qos",
    }
    for resource, option in named.items():
        if resources.get(resource) not in (None, ""):
            args += [option, str(resources[resource])]
    runtime = resources.get("runtime")
    if isinstance(runtime, int | float) and runtime > 0:
        args += ["--time", str(int(runtime))]
    if resources.get("mem_mb_per_cpu"):
        args += ["--mem-per-cpu", str(int(resources["mem_mb_per_cpu"]))]
    elif spec.mem_mb:
        args += ["--mem", str(int(spec.mem_mb))]
    cpus = resources.get("cpus_per_task") or spec.threads
    args += ["--cpus-per-task", str(max(1, int(cpus)))]
    nodes = resources.get("nodes")
    if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes >= 1:
        args += [f"--nodes={nodes}"]
    extra = resources.get("slurm_extra")
    if isinstance(extra, str) and extra.strip():
        args += shlex.split(extra)
    return args


class SlurmDispatcher(ClusterDispatcher):
    """Runs a run's jobs as SLURM batch jobs and collects their node-signed statements."""

    def __init__(
        self, recorder: RunRecorder, options: DispatchOptions, *, logger: Any = None
    ) -> None:
        for tool in ("sbatch", "squeue", "scontrol", "scancel"):
            if _which(tool) is None:
                raise UsageError(
                    f"--pox-dispatch slurm needs the SLURM command {tool!r}, not found on PATH",
                    hint="run on a SLURM login node (or start the test cluster: make slurm-up)",
                )
        super().__init__(recorder, options, collector_host=options.collector_host, logger=logger)
        self.slurm_logs = self.directory / "slurm"
        self.slurm_logs.mkdir(parents=True, exist_ok=True)
        self._use_sacct: bool | None = None
        self._start_polling("pox-slurm-poll")

    # -- one job -------------------------------------------------------------------------------

    def execute(self, facts: Sequence[JobFacts], spec: JobSpec, script: Path | None) -> str | None:
        """Submit the job, wait for its statement, return an error text (None: succeeded).

        Called on the executor's worker thread; blocks until the attempt is recorded.
        """
        ticket, path = self._write_ticket(facts, spec, script)
        command = [
            "sbatch",
            *sbatch_arguments(
                facts,
                spec,
                job_name=self.recorder.run_id,
                output=self.slurm_logs / f"{ticket.submission_id}.log",
            ),
            *self.options.sbatch_extra,
            "--wrap",
            shlex.join([self.options.python, "-m", "pox_executor.cli", "jobstep", str(path)]),
        ]
        try:
            slurm_id = _run(command).strip().split(";")[0]
        except SlurmError as exc:
            remove_quietly(path)
            self.collector.withdraw(ticket.submission_id)
            return f"the job could not be submitted to SLURM (it did not run): {exc}\n"
        waiting = _Waiting(slurm_id=slurm_id, ticket=ticket)
        with self._lock:
            self._waiting[ticket.submission_id] = waiting
        if self.collector.receipt(ticket.submission_id) is not None:
            waiting.done.set()  # delivered before we started waiting
        waiting.done.wait()
        with self._lock:
            self._waiting.pop(ticket.submission_id, None)
        try:
            return self._outcome(waiting, facts, spec)
        finally:
            remove_quietly(path)

    def _ended(self, waiting: _Waiting, *, detailed: bool) -> str:
        node = f" on {waiting.node}" if detailed and waiting.node else ""
        return f"SLURM job {waiting.slurm_id} ended {waiting.state or 'UNKNOWN'}{node}"

    def _ran_in(self, waiting: _Waiting) -> str:
        return f"on SLURM job {waiting.slurm_id}"

    def _lost_hint(self, waiting: _Waiting) -> str:
        return f"; SLURM log: {self.slurm_logs / (waiting.ticket.submission_id + '.log')}"

    def _lost_log(self, spec: JobSpec) -> Path:
        return self.slurm_logs / f"{spec.invocation_id}.log"

    # -- status polling ------------------------------------------------------------------------

    def _poll(self, waiting: Sequence[_Waiting]) -> None:
        pending = {w.slurm_id: w for w in waiting}
        try:
            states = self.query_states(sorted(pending))
        except SlurmError as exc:
            self.logger.warning(f"PoX: SLURM status query failed (will retry): {exc}")
            return
        for slurm_id, (state, node) in states.items():
            found = pending.get(slurm_id)
            if found is None:
                continue
            found.node = node or found.node
            if state in FINISHED_STATES:
                found.state = state
                found.done.set()

    def query_states(self, slurm_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """SLURM job id -> (state, node) for the given jobs: sacct, else squeue + scontrol."""
        if self._use_sacct is not False:
            try:
                return _sacct_states(slurm_ids)
            except SlurmError as exc:
                if self._use_sacct is None:
                    self.logger.info(
                        f"PoX: sacct unavailable ({str(exc).splitlines()[0]}); polling with "
                        "squeue and scontrol"
                    )
                self._use_sacct = False
        states = _squeue_states(slurm_ids)
        for slurm_id in slurm_ids:
            if slurm_id not in states:
                states[slurm_id] = _scontrol_state(slurm_id)
        return states

    # -- whole run -----------------------------------------------------------------------------

    def cancel_all(self) -> None:
        with self._lock:
            ids = [w.slurm_id for w in self._waiting.values() if isinstance(w, _Waiting)]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, check=False)


# The head's producers of a job's inputs (kept under this name for callers of this module).
_producers_for = producers_for


def _which(tool: str) -> str | None:
    import shutil

    return shutil.which(tool)


def _run(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{command[0]} could not run: {exc}") from None
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip()
        raise SlurmError(f"{command[0]} failed (exit {done.returncode}): {said}")
    return done.stdout


def _sacct_states(slurm_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    out = _run(
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "--format=JobIdRaw,State,NodeList",
            "--jobs",
            ",".join(slurm_ids),
        ]
    )
    states: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 2:
            states[parts[0]] = (
                parts[1].split()[0] if parts[1] else "",
                parts[2] if len(parts) > 2 else "",
            )
    return states


def _squeue_states(slurm_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    done = subprocess.run(
        [
            "squeue",
            "--noheader",
            "--states=all",
            "--format=%i|%T|%N",
            "--jobs",
            ",".join(slurm_ids),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise SlurmError(f"squeue failed (exit {done.returncode}): {done.stderr.strip()}")
    states: dict[str, tuple[str, str]] = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return states


def _scontrol_state(slurm_id: str) -> tuple[str, str]:
    done = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", slurm_id],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return (PURGED, "")  # slurmctld forgot it (MinJobAge passed): it ended
        raise SlurmError(f"scontrol show job {slurm_id} failed: {done.stderr.strip()}")
    fields = dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)
    return (fields.get("JobState", ""), fields.get("NodeList", ""))


def open_dispatcher(
    kind: str, recorder: RunRecorder, options: DispatchOptions, *, logger: Any = None
) -> SlurmDispatcher:
    if kind != "slurm":
        raise UsageError(
            f"--pox-dispatch {kind!r} is not supported; choose 'slurm' (or leave it unset to run "
            "jobs on this machine)"
        )
    return SlurmDispatcher(recorder, options, logger=logger)
