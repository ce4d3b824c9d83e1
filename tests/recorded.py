"""Record a small run in-process, with the library alone: the recorder, the sim runtime without
isolation (it really runs each shell command) and keys the test controls. No Snakemake.

`record_run` runs a three-job DAG (a: data.txt -> a.txt; b, c: a.txt -> b.txt, c.txt) and
returns the bundle; `Step` describes one job so tests can record other shapes (a job that leaves
an output missing, one that fails). `resign` re-signs a statement with a given key, which is how
the audit tests forge entries that are correctly signed but say the wrong thing.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pox_executor.enclave.commit import wait_for_discarded_stages
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.enclave.sim import SimRuntime
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.dsse import serialize_envelope, sign_envelope
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.recorder import JobFacts, OutputFile, RecordedAttempt, RunRecorder


@dataclass(frozen=True)
class Step:
    jobid: int
    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    command: str
    attempt: int = 1


DAG = (
    Step(1, "a", ("data.txt",), ("a.txt",), "cat data.txt > a.txt"),
    Step(2, "b", ("a.txt",), ("b.txt",), "tr a-z A-Z < a.txt > b.txt"),
    Step(3, "c", ("a.txt",), ("c.txt",), "rev a.txt > c.txt"),
)


def facts_of(step: Step) -> JobFacts:
    return JobFacts(
        jobid=step.jobid,
        rule=step.rule,
        attempt=step.attempt,
        inputs=step.inputs,
        outputs=tuple(OutputFile(o) for o in step.outputs),
        logs=(),
        wildcards={},
        params={},
        threads=1,
        resources={},
        shell_command=step.command,
        script=None,
        has_run_block=False,
        snakefile="Snakefile",
        conda_env=None,
        container=None,
        network=False,
    )


def run_step(recorder: RunRecorder, step: Step) -> RecordedAttempt:
    facts = facts_of(step)
    inputs = recorder.hash_inputs(facts)
    invocation = f"inv-{step.jobid}-{step.attempt}"
    spec = JobSpec(
        invocation_id=invocation,
        command=step.command,
        workdir=recorder.workdir,
        outputs=tuple(OutputSpec(o) for o in step.outputs),
        log_path=recorder.bundle.logs_dir / f"{invocation}.log",
    )
    outcome = recorder.runtime.run(spec, threading.Event())
    return recorder.record(
        facts, outcome, input_digests=inputs, invocation_id=invocation, job_log=spec.log_path
    )


def new_recorder(
    workdir: Path, *, requester: str | None = None, resume: bool = True
) -> RunRecorder:
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    meta = {"snakemake_version": "test", "pox_version": "test", "settings": {"backend": "sim"}}
    return RunRecorder(
        workdir,
        runtime,
        snakefile=str(workdir / "Snakefile"),
        meta=meta,
        resume=resume,
        requester=requester,
    )


@dataclass
class RecordedRun:
    """A run recorded in-process, with what a test needs to forge well-signed entries: the
    session key, the runtime (its simulated platform key makes evidence) and the checkpoint text
    after each append (`checkpoints[n]` covers the first n entries)."""

    bundle: RunBundle
    key: SigningKey
    key_name: str
    runtime: SimRuntime
    checkpoints: dict[int, str]
    recorder: RunRecorder


def record_run(
    workdir: Path,
    steps: Sequence[Step] = DAG,
    *,
    status: str | None = None,
    requester: str | None = None,
    finish: bool = True,
    config_overrides: dict[str, Any] | None = None,
) -> RecordedRun:
    """Record `steps` in a run under `workdir` (created with Snakefile and data.txt); an
    interrupted run there (recorded with finish=False, then `crash`ed) is resumed."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "Snakefile").exists():
        (workdir / "Snakefile").write_text("# recorded in-process\n")
        (workdir / "data.txt").write_text("alpha\n")
    recorder = new_recorder(workdir, requester=requester)
    checkpoints: dict[int, str] = {}

    def keep() -> None:
        checkpoints[recorder.log.size] = (recorder.bundle.checkpoint_path).read_text()

    recorder.record_sources(["Snakefile"], {}, config_overrides=config_overrides)
    keep()
    results = []
    for step in steps:
        results.append(run_step(recorder, step))
        keep()
    # As the executor's shutdown does: the stages go on a background thread, and a caller
    # copying the working directory next must not meet one half removed.
    wait_for_discarded_stages()
    if finish:
        ok = all(r.succeeded for r in results)
        recorder.finish(status or ("succeeded" if ok else "failed"), [])
        keep()
    runtime = recorder.runtime
    assert isinstance(runtime, SimRuntime)
    return RecordedRun(
        RunBundle.load(recorder.bundle.path),
        recorder.key,
        recorder.key_name,
        runtime,
        checkpoints,
        recorder,
    )


def crash(run: RecordedRun) -> None:
    """What a kill leaves: the writer's lock is released, no closing is written, and the log's
    pending group-commit checkpoint never comes (a live timer would later overwrite the resumed
    session's checkpoint with this one's smaller tree)."""
    timer = run.recorder.log._timer
    if timer is not None:
        timer.cancel()
    assert run.recorder._writer_lock is not None
    run.recorder._writer_lock.release()
    run.recorder.hasher.cache.close()


def statement_of(line: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.b64decode(json.loads(line)["payload"]))
    return result


def resign(statement: dict[str, Any], key: SigningKey) -> bytes:
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return serialize_envelope(sign_envelope(payload, key))
