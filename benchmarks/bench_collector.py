"""Load test of the head's collector: concurrent simulated nodes post node-signed job statements
over loopback HTTP, some resend theirs, and nothing may be lost or appended twice.

Default: 100 nodes, 100,000 statements, 10% of them resent (half after the first reply, as a
sender whose reply was lost does, half at the same moment from a second connection). Each
statement is made beforehand, in sender processes, exactly as `pox jobstep` makes one on a node
(`dispatch.node.NodeRecorder`: a fresh key per jobstep, simulated TEE evidence binding it for the
job's task id, the head's session sources and enclave challenge), for a job that wrote one small
output on the shared directory; only running the job itself is left out. The head is the real
thing: a `RunRecorder` with a dispatch session, a `Collector` that checks every statement (run,
task id, expected attempt, signature by a key the evidence binds, evidence, output sha256 on the
shared directory) and appends it to the run's log, behind a `CollectorServer` on 127.0.0.1.

Printed: statements per second accepted over HTTP, against the same collector fed in-process
(the baseline, measured in the same run on the first statements); the head's peak resident
memory and its growth per statement; lost and duplicated statements (both must be 0: every
statement in the log exactly once, every resend answered with the first receipt). Exits 1 on a
loss or duplicate. Writes benchmarks/results/collector.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results

from pox_executor.dispatch.collector import Collector, CollectorServer, post_submission
from pox_executor.dispatch.node import NodeRecorder
from pox_executor.dispatch.protocol import Submission, Ticket
from pox_executor.enclave.runtime import JobSpec, OutputSpec, RunOutcome
from pox_executor.enclave.sim import SimRuntime
from pox_executor.primitives import utc_now
from pox_executor.provenance.digests import FileDigest, Hasher
from pox_executor.provenance.recorder import JobFacts, OutputFile, RunRecorder
from pox_executor.provenance.records import JobRecord, decode_line, job_task_id

TOKEN = "load-test-token"


@dataclass(frozen=True)
class HeadInfo:
    """What the sender processes need from the head (plain data, picklable)."""

    workdir: str
    run_id: str
    enclave_challenge: str | None
    sources: tuple[tuple[str, str, int], ...]


def open_head(workdir: Path) -> RunRecorder:
    """A head recorder whose signed session names a dispatch, opened (sources hashed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text("rule work:\n    input: 'data.txt'\n    output: 'out/{i}'\n")
    (workdir / "data.txt").write_text("alpha\n")
    (workdir / "out").mkdir(exist_ok=True)
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    meta = {
        "snakemake_version": "load-test",
        "pox_version": "load-test",
        "settings": {"backend": "sim", "dispatch": "load-test"},
    }
    recorder = RunRecorder(workdir, runtime, snakefile=str(workdir / "Snakefile"), meta=meta)
    recorder.record_sources(["Snakefile"], {})
    return recorder


def _facts(jobid: int) -> JobFacts:
    return JobFacts(
        jobid=jobid,
        rule="work",
        attempt=1,
        inputs=("data.txt",),
        outputs=(OutputFile(f"out/{jobid}.txt"),),
        logs=(),
        wildcards={"i": str(jobid)},
        params={},
        threads=1,
        resources={},
        shell_command=f"rev data.txt > out/{jobid}.txt",
        script=None,
        has_run_block=False,
        snakefile="Snakefile",
        conda_env=None,
        container=None,
        network=False,
    )


def submission_id(jobid: int) -> str:
    return f"load-{jobid}.1"


def make_statements(head: HeadInfo, jobids: Sequence[int], target: str) -> int:
    """In a sender process: write one submission per job (JSON lines), as a node makes it."""
    workdir = Path(head.workdir)
    runtime = SimRuntime(isolate=False)
    runtime.prepare(workdir)
    sources = tuple(FileDigest(p, s, n) for p, s, n in head.sources)
    log_path = workdir / ".pox" / "load-test-job.log"
    log_path.write_text("")
    inputs: list[FileDigest] | None = None
    hasher = Hasher()  # one per process: a real node makes one per jobstep, with its threads
    with open(target, "wb") as out:
        for jobid in jobids:
            facts = _facts(jobid)
            (workdir / "out" / f"{jobid}.txt").write_text(f"{jobid}\n")
            sid = submission_id(jobid)
            ticket = Ticket(
                run_id=head.run_id,
                members=(facts,),
                spec=JobSpec(
                    invocation_id=sid,
                    command=facts.shell_command or "",
                    workdir=workdir,
                    outputs=(OutputSpec(f"out/{jobid}.txt"),),
                    log_path=log_path,
                ),
                backend="sim",
                isolate=False,
                default_image=None,
                shared_home=False,
                enclave_challenge=head.enclave_challenge,
                sources=sources,
                producers={},
                spool_dir=workdir / ".pox" / "spool",
            )
            node = NodeRecorder(ticket, runtime)
            node.hasher.close()
            node.hasher = hasher
            if inputs is None:
                inputs = node.hash_inputs(facts)
            now = utc_now()
            outcome = RunOutcome(
                exit_code=0,
                started_on=now,
                finished_on=now,
                isolated=False,
                isolation="load test: statement made as on a node, the command was not run",
            )
            node.record(facts, outcome, input_digests=inputs, invocation_id=sid, job_log=log_path)
            out.write(Submission(sid, node.lines).to_json() + b"\n")
    hasher.close()
    return len(jobids)


def send_statements(
    url: str, node_files: Sequence[str], resend_fraction: float, seed: int
) -> list[tuple[str, tuple[int, ...], bool]]:
    """In a sender process: one thread per simulated node posts its file's submissions."""
    receipts: list[tuple[str, tuple[int, ...], bool]] = []
    lock = threading.Lock()
    errors: list[str] = []

    def node(path: str, node_seed: int) -> None:
        chance = random.Random(node_seed)
        mine: list[tuple[str, tuple[int, ...], bool]] = []

        def post(sub: Submission) -> None:
            r = post_submission(url, TOKEN, sub, attempts=8, backoff_s=0.2)
            mine.append((r.submission_id, r.indices, r.duplicate))

        try:
            with open(path, "rb") as handle:
                for line in handle:
                    sub = Submission.from_json(line, where=path)
                    roll = chance.random()
                    if roll < resend_fraction / 2:  # a second connection races the first
                        racer = threading.Thread(target=post, args=(sub,))
                        racer.start()
                        post(sub)
                        racer.join()
                    else:
                        post(sub)
                        if roll < resend_fraction:  # the reply was lost: send it again
                            post(sub)
        except Exception as exc:
            errors.append(f"{path}: {exc}")
        with lock:
            receipts.extend(mine)

    threads = [
        threading.Thread(target=node, args=(p, seed * 1000 + i)) for i, p in enumerate(node_files)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    return receipts


def logged_task_ids(path: Path) -> list[str]:
    """The task id of every job record in the log, in order, read one line at a time."""
    task_ids = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            _, entry = decode_line(line.rstrip(b"\n"), line_no=number)
            if isinstance(entry, JobRecord):
                task_ids.append(entry.task_id)
    return task_ids


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class LoadResult:
    statements: int
    nodes: int
    sends: int
    seconds: float
    per_second: float
    in_process_per_second: float | None
    lost: int
    duplicated: int
    resends_answered_with_first_receipt: int
    head_peak_rss_bytes: int
    head_rss_growth_per_statement_bytes: float
    bundle: Path

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["bundle"] = str(self.bundle)
        return data


def run_load_test(
    workdir: Path,
    *,
    statements: int,
    nodes: int,
    resend_fraction: float = 0.1,
    processes: int = 2,
    baseline: int = 0,
    seed: int = 1,
) -> LoadResult:
    """Make, send and collect `statements` from `nodes` simulated nodes; count losses."""
    recorder = open_head(workdir / "head")
    head = HeadInfo(
        workdir=str(recorder.workdir),
        run_id=recorder.run_id,
        enclave_challenge=recorder.enclave_challenge,
        sources=tuple((s.path, s.sha256, s.size_bytes) for s in recorder.source_digests),
    )
    jobids = list(range(1, statements + 1))
    node_files = [str(workdir / f"node-{n:03d}.jsonl") for n in range(nodes)]
    shares = [jobids[n::nodes] for n in range(nodes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        made = pool.starmap(
            make_statements, [(head, share, f) for share, f in zip(shares, node_files, strict=True)]
        )
    assert sum(made) == statements

    in_process_rate = None
    if baseline:  # the same checks and appends without HTTP, into a run of its own
        other = open_head(workdir / "baseline")
        subs = []
        with open(node_files[0], "rb") as handle:
            for line in handle:
                subs.append(Submission.from_json(line, where="baseline"))
        subs = subs[:baseline]
        # the statements name the main run; this collector checks them as that run's and
        # appends them to a log of its own, which is thrown away
        base = Collector(recorder.run_id, other.append_collected, workdir=recorder.workdir)
        start = time.perf_counter()
        for sub in subs:
            base.submit(sub)
        in_process_rate = len(subs) / (time.perf_counter() - start)
        base.close()
        other.finish("succeeded", [])

    collector = Collector(
        recorder.run_id,
        recorder.append_collected,
        workdir=recorder.workdir,
        allow_simulated=True,
        require_expected=True,
        known_digests=recorder.log.envelope_digests(),
    )
    for jobid in jobids:
        collector.expect(submission_id(jobid), [job_task_id(recorder.run_id, jobid, 1)])
    server = CollectorServer(collector, TOKEN)
    groups = [node_files[p::processes] for p in range(processes)]
    rss_before = rss_bytes()
    start = time.perf_counter()
    try:
        with context.Pool(processes) as pool:
            sent = pool.starmap(
                send_statements,
                [(server.url, g, resend_fraction, seed + i) for i, g in enumerate(groups)],
            )
    finally:
        elapsed = time.perf_counter() - start
        server.close()
        collector.close()
    growth = (rss_bytes() - rss_before) / statements
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before reading it back
    recorder.finish("succeeded", [])

    receipts = [r for group in sent for r in group]
    by_submission: dict[str, set[tuple[int, ...]]] = {}
    for sid, indices, _ in receipts:
        by_submission.setdefault(sid, set()).add(indices)
    task_ids = logged_task_ids(recorder.bundle.attestations_path)
    expected = {job_task_id(recorder.run_id, j, 1) for j in jobids}
    lost = len(expected - set(task_ids))
    duplicated = len(task_ids) - len(set(task_ids))
    consistent = sum(1 for s in by_submission.values() if len(s) == 1)
    return LoadResult(
        statements=statements,
        nodes=nodes,
        sends=len(receipts),
        seconds=elapsed,
        per_second=statements / elapsed,
        in_process_per_second=in_process_rate,
        lost=lost,
        duplicated=duplicated + (len(by_submission) - consistent),
        resends_answered_with_first_receipt=sum(1 for *_, dup in receipts if dup),
        head_peak_rss_bytes=peak,
        head_rss_growth_per_statement_bytes=growth,
        bundle=recorder.bundle.path,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--resend-fraction", type=float, default=0.1)
    parser.add_argument("--processes", type=int, default=2, help="sender processes")
    parser.add_argument("--baseline", type=int, default=2000, help="statements fed in-process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pox-bench-collector-") as tmp:
        result = run_load_test(
            Path(tmp),
            statements=args.statements,
            nodes=args.nodes,
            resend_fraction=args.resend_fraction,
            processes=args.processes,
            baseline=args.baseline,
        )
        log_bytes = (result.bundle / "attestations.intoto.jsonl").stat().st_size
    print(
        f"{result.statements:,} statements from {result.nodes} nodes ({result.sends:,} sends, "
        f"{result.resends_answered_with_first_receipt:,} resends) in {result.seconds:.1f} s: "
        f"{result.per_second:,.0f} statements/s over HTTP"
    )
    if result.in_process_per_second:
        print(
            f"in-process collector (baseline): {result.in_process_per_second:,.0f}/s; HTTP "
            f"reaches {result.per_second / result.in_process_per_second:.2f}x of it"
        )
    print(
        f"head peak RSS {result.head_peak_rss_bytes / 2**20:,.0f} MiB, growth "
        f"{result.head_rss_growth_per_statement_bytes:,.0f} bytes per statement; "
        f"log {log_bytes / 2**20:,.0f} MiB"
    )
    print(f"lost: {result.lost}, duplicated: {result.duplicated}")
    data = result.to_json()
    data["log_bytes"] = log_bytes
    write_results("collector", data)
    return 0 if result.lost == 0 and result.duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
