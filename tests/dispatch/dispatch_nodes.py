"""A head recorder with dispatch enabled and in-process "nodes": each `node_submission` writes a
job ticket as the SLURM dispatcher does and runs `pox jobstep`'s library function on it, so the
statements the tests collect are really made, attested and signed node-side (sim runtime without
isolation: it really runs each shell command)."""

from __future__ import annotations

from pathlib import Path

from recorded import Step, facts_of

from pox_executor.dispatch.node import run_jobstep
from pox_executor.dispatch.protocol import Submission, Ticket
from pox_executor.dispatch.slurm import _producers_for
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.enclave.sim import SimRuntime
from pox_executor.provenance.recorder import ChallengeSource, RunRecorder


def dispatch_recorder(
    workdir: Path, *, challenge_source: ChallengeSource | None = None
) -> RunRecorder:
    """A head recorder whose signed session settings name a dispatch, opened (sources hashed);
    `challenge_source`: a key broker making the enclave challenges (`--pox-sms`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "Snakefile").exists():
        (workdir / "Snakefile").write_text("# dispatched in-process\n")
        (workdir / "data.txt").write_text("alpha\n")
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    meta = {
        "snakemake_version": "test",
        "pox_version": "test",
        "settings": {"backend": "sim", "dispatch": "slurm"},
    }
    recorder = RunRecorder(
        workdir,
        runtime,
        snakefile=str(workdir / "Snakefile"),
        meta=meta,
        challenge_source=challenge_source,
    )
    recorder.record_sources(["Snakefile"], {})
    return recorder


def ticket_for(recorder: RunRecorder, step: Step, spool: Path, **delivery: str) -> Ticket:
    invocation = f"inv-{step.jobid}-{step.attempt}"
    facts = facts_of(step)
    return Ticket(
        run_id=recorder.run_id,
        members=(facts,),
        spec=JobSpec(
            invocation_id=invocation,
            command=step.command,
            workdir=recorder.workdir,
            outputs=tuple(OutputSpec(o) for o in step.outputs),
            log_path=recorder.bundle.logs_dir / f"{invocation}.log",
        ),
        backend="sim",
        isolate=False,
        default_image=None,
        shared_home=False,
        enclave_challenge=recorder.enclave_challenge,
        sources=tuple(recorder.source_digests),
        producers=_producers_for(recorder, [facts]),
        spool_dir=spool,
        collector_url=delivery.get("url"),
        collector_token=delivery.get("token"),
    )


def node_submission(recorder: RunRecorder, step: Step, spool: Path) -> Submission:
    return run_jobstep(ticket_for(recorder, step, spool)).submission
