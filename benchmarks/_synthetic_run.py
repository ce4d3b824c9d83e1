"""A synthetic run of about N jobs, recorded with the library itself (real statements, signatures,
simulated evidence, Merkle log and checkpoint), without running a process per job.

Shape: `samples` samples, each through trim -> align -> sort -> call, plus a qc job reading the
trimmed reads, and one `merge` job reading every call (5 * samples + 1 jobs). Each job's outputs
are written by this module (a few bytes) and recorded through `RunRecorder.record`, exactly as the
plugin records a job that ran. `pox verify --allow-simulated` accepts the result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pox_executor.enclave.runtime import RunOutcome
from pox_executor.enclave.sim import SimRuntime
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.recorder import JobFacts, OutputFile, RunRecorder

RULES = (
    ("trim", "reads/{s}.fq", "trimmed/{s}.fq", "fastp -i {input} -o {output}"),
    ("align", "trimmed/{s}.fq", "mapped/{s}.bam", "bwa mem ref.fa {input} > {output}"),
    ("sort", "mapped/{s}.bam", "sorted/{s}.bam", "samtools sort -o {output} {input}"),
    ("call", "sorted/{s}.bam", "calls/{s}.vcf", "bcftools call -mv {input} > {output}"),
    ("qc", "trimmed/{s}.fq", "qc/{s}.json", "fastp -i {input} --json {output}"),
)


def _facts(jobid: int, rule: str, inputs: tuple[str, ...], output: str, command: str) -> JobFacts:
    sample = Path(output).stem
    return JobFacts(
        jobid=jobid,
        rule=rule,
        attempt=1,
        inputs=inputs,
        outputs=(OutputFile(output),),
        logs=(),
        wildcards={"sample": sample} if rule != "merge" else {},
        params={},
        threads=1,
        resources={},
        shell_command=command,
        script=None,
        has_run_block=False,
        snakefile="Snakefile",
        conda_env=None,
        container=None,
        network=False,
    )


def record_synthetic_run(workdir: Path, samples: int) -> RunBundle:
    """Record the synthetic run in `workdir` (created); its bundle."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text("# synthetic benchmark run\n")
    for sub in ("reads", "trimmed", "mapped", "sorted", "calls", "qc"):
        (workdir / sub).mkdir(exist_ok=True)
    for s in range(samples):
        (workdir / f"reads/s{s}.fq").write_text(f"@read s{s}\nACGT\n+\nIIII\n")
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    meta = {"snakemake_version": "bench", "pox_version": "bench", "settings": {"backend": "sim"}}
    recorder = RunRecorder(workdir, runtime, snakefile=str(workdir / "Snakefile"), meta=meta)
    recorder.record_sources(["Snakefile"], {})
    jobid = 0

    def run(rule: str, inputs: tuple[str, ...], output: str, command: str) -> None:
        nonlocal jobid
        jobid += 1
        facts = _facts(jobid, rule, inputs, output, command)
        digests = recorder.hash_inputs(facts)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        (workdir / output).write_text(f"{rule} of {' '.join(inputs)}\n")
        outcome = RunOutcome(
            exit_code=0, started_on=now, finished_on=now, isolated=False, isolation="synthetic"
        )
        recorder.record(
            facts,
            outcome,
            input_digests=digests,
            invocation_id=f"synthetic-{jobid}",
            job_log=workdir / "no-log",
        )

    for s in range(samples):
        for rule, source, target, command in RULES:
            inp, out = source.format(s=f"s{s}"), target.format(s=f"s{s}")
            run(rule, (inp,), out, command.format(input=inp, output=out))
    calls = tuple(f"calls/s{s}.vcf" for s in range(samples))
    run("merge", calls, "merged.vcf", "bcftools merge calls/*.vcf > merged.vcf")
    recorder.finish("succeeded", [])
    return RunBundle.load(recorder.bundle.path)
