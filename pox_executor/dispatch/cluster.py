"""What a cluster dispatcher does whatever the cluster is: the head's side of one dispatched
attempt, shared by `--pox-dispatch slurm` (`slurm.SlurmDispatcher`) and `--pox-dispatch
kubernetes` (`kubernetes.KubernetesDispatcher`).

Owns: the run's dispatch directories (tickets, spool), the collector and its HTTP server, the
ticket of an attempt (with the enclave challenge each member must bind), the wait for the
attempt's statement once the cluster says the job ended (a grace period, then the spooled copy,
then `withdraw`), and the head's record of an attempt that left no statement. A subclass submits
the job, polls the cluster, and says in its own words what ran where (`_ended`, `_ran_in`).

Enclave challenges: without a key broker the ticket carries the session's challenge and every
member binds it (as before). With one (`--pox-sms`), the head asks the broker for each member's
challenge under the member's binding task id (`job_task_id(run, jobid, attempt)`, known when the
ticket is written); the ticket maps task id -> challenge address, the node binds that address
into the member's evidence, and the collector refuses a statement whose bound challenge is not the
one the head asked for that member.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pox_executor.audit.evidence_check import BUILDER_MEASUREMENT_MARK
from pox_executor.dispatch.collector import (
    Collector,
    CollectorServer,
    Receipt,
    SubmissionRejected,
)
from pox_executor.dispatch.protocol import Submission, Ticket, read_spool, write_ticket
from pox_executor.enclave.runtime import JobSpec, RunOutcome
from pox_executor.errors import PoxError
from pox_executor.primitives import utc_now
from pox_executor.provenance.names import record_name
from pox_executor.provenance.recorder import JobFacts, Producer, RunRecorder
from pox_executor.provenance.records import JobRecord, job_task_id

log = logging.getLogger(__name__)


@dataclass
class Waiting:
    """One dispatched attempt the head waits for (a subclass adds the cluster's names)."""

    ticket: Ticket
    done: threading.Event = field(default_factory=threading.Event)
    state: str | None = None  # the cluster's finished state, once seen


def member_challenges(recorder: RunRecorder, facts: Sequence[JobFacts]) -> dict[str, str]:
    """Task id -> enclave challenge address for each member, made by the recorder's key broker
    (empty without one: every member binds the session's challenge)."""
    source = recorder.challenge_source
    if source is None:
        return {}
    tasks = [job_task_id(recorder.run_id, f.jobid, f.attempt) for f in facts]
    return {task: source(task) for task in tasks}


def producers_for(recorder: RunRecorder, facts: Sequence[JobFacts]) -> Mapping[str, Producer]:
    """The producers of the job's inputs (and of directories holding them), from the head."""
    names = {
        record_name(n, recorder.workdir) if not n.startswith("external:") else n
        for f in facts
        for n in f.inputs
    }
    wanted = set(names)
    for name in names:
        parts = name.split("/")
        wanted.update("/".join(parts[:i]) for i in range(1, len(parts)))
    producers = dict(recorder.producers)  # a copy: the recorder adds to it concurrently
    return {n: p for n, p in producers.items() if n in wanted}


class ClusterDispatcher:
    """The head's side of dispatched attempts; a subclass submits and polls its cluster."""

    def __init__(
        self,
        recorder: RunRecorder,
        options: Any,  # slurm.DispatchOptions (it lives there; slurm imports this module)
        *,
        collector_host: str,
        logger: Any = None,
    ) -> None:
        self.recorder = recorder
        self.options = options
        self.logger = logger or log
        self.workdir = recorder.workdir
        self.directory = self.workdir / ".pox" / "dispatch" / recorder.run_id
        self.tickets_dir = self.directory / "tickets"
        self.spool_dir = self.directory / "spool"
        for d in (self.tickets_dir, self.spool_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.collector = Collector(
            recorder.run_id,
            recorder.append_collected,
            workdir=self.workdir,
            allow_simulated=True,  # judged by `pox verify` for the whole run, as for local jobs
            require_expected=True,
            known_digests=recorder.log.envelope_digests(),
            on_collected=self._collected,
        )
        self._token = secrets.token_urlsafe(32)
        self.server = CollectorServer(self.collector, self._token, host=collector_host)
        self._lock = threading.Lock()
        self._records: dict[int, JobRecord] = {}  # log index -> collected record, until read
        self._waiting: dict[str, Waiting] = {}  # by submission id
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _start_polling(self, name: str) -> None:
        """Start the status poller (a subclass calls it once its own state is set up)."""
        self._poller = threading.Thread(target=self._poll_loop, name=name, daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.options.poll_interval_s):
            with self._lock:
                pending = [w for w in self._waiting.values() if not w.done.is_set()]
            if pending:
                self._poll(pending)

    # -- hooks -----------------------------------------------------------------------------------

    def _poll(self, waiting: Sequence[Any]) -> None:
        """Ask the cluster about these unfinished attempts; set `state` and `done` of those that
        ended (a failed query is logged and retried at the next poll)."""
        raise NotImplementedError

    def _ended(self, waiting: Any, *, detailed: bool) -> str:
        """'<cluster job> ended <state>' (`detailed`: with what the head's record may add)."""
        raise NotImplementedError

    def _ran_in(self, waiting: Any) -> str:
        """Where a job that exited ran, after 'exit code N ' ('on SLURM job 7')."""
        raise NotImplementedError

    def _lost_hint(self, waiting: Any) -> str:
        """Appended to the error of an attempt that left no statement (e.g. the SLURM log)."""
        return ""

    def _lost_log(self, spec: JobSpec) -> Path:
        """The log file the head's record of a lost attempt names."""
        return spec.log_path

    def _gave_up(self, waiting: Any) -> bool:
        """Stop waiting for a statement before the grace period ends (nothing can come)."""
        return False

    # -- one attempt -----------------------------------------------------------------------------

    def _ticket(self, facts: Sequence[JobFacts], spec: JobSpec, script: Path | None) -> Ticket:
        rec = self.recorder
        # the session's opening makes its challenge: open it before a ticket names that challenge
        # (the plugin opens lazily, with the first record, which here comes back from a node)
        rec.ensure_open()
        return Ticket(
            run_id=rec.run_id,
            members=tuple(facts),
            spec=spec,
            backend=self.options.backend,
            isolate=self.options.isolate,
            default_image=self.options.default_image,
            shared_home=self.options.shared_home,
            enclave_challenge=rec.enclave_challenge,
            enclave_challenges=member_challenges(rec, facts),
            sources=tuple(rec.source_digests),
            producers=producers_for(rec, facts),
            spool_dir=self.spool_dir,
            collector_url=self.server.url,
            collector_token=self._token,
            script=script,
        )

    def _write_ticket(
        self, facts: Sequence[JobFacts], spec: JobSpec, script: Path | None
    ) -> tuple[Ticket, Path]:
        """Write the attempt's ticket and tell the collector what may answer it."""
        ticket = self._ticket(facts, spec, script)
        path = self.tickets_dir / f"{ticket.submission_id}.json"
        write_ticket(path, ticket)
        tasks = [job_task_id(self.recorder.run_id, f.jobid, f.attempt) for f in facts]
        self.collector.expect(
            ticket.submission_id,
            tasks,
            challenges={t: ticket.challenge_for(t) for t in tasks},
        )
        return ticket, path

    def _outcome(self, waiting: Any, facts: Sequence[JobFacts], spec: JobSpec) -> str | None:
        sid = waiting.ticket.submission_id
        # the cluster reports a stopped job at once, while its jobstep may still be recording
        # the stopped attempt: give it the grace period before deciding it left nothing
        deadline = time.monotonic() + self.options.collect_grace_s
        receipt = self.collector.receipt(sid) or self._collect_spooled(sid)
        while receipt is None and not self._gave_up(waiting) and time.monotonic() < deadline:
            time.sleep(0.5)
            receipt = self.collector.receipt(sid) or self._collect_spooled(sid)
        if receipt is None:
            receipt = self.collector.withdraw(sid)  # None: nothing came, a late one is refused
        if receipt is None:
            self._record_lost(waiting, facts, spec)
            return (
                f"{self._ended(waiting, detailed=False)} without a signed statement (recorded "
                f"as a failed attempt){self._lost_hint(waiting)}\n"
            )
        with self._lock:  # taken out: a long run must not keep every parsed statement
            records = [self._records.pop(i, None) for i in receipt.indices]
        if any(r is None or not r.succeeded for r in records):
            codes = sorted({r.exit_code for r in records if r is not None})
            return (
                f"exit code {', '.join(map(str, codes))} {self._ran_in(waiting)}; job log: "
                f"{spec.log_path}\n"
            )
        return None

    def _collect_spooled(self, sid: str) -> Receipt | None:
        """Submit the spooled copy of `sid`'s statement, if the node left one.

        An unreadable spool file or a refused statement is logged and counts as no statement
        (the attempt is then recorded as lost); any other error (the head could not append to
        its own log) propagates: it is the head's failure, not the node's.
        """
        try:
            submission = read_spool(self.spool_dir, sid)
        except PoxError as exc:
            self.logger.warning(f"PoX: unreadable spooled statement of {sid}: {exc}")
            return None
        if submission is None:
            return None
        try:
            return self.collector.submit(submission)
        except SubmissionRejected as exc:
            self.logger.warning(f"PoX: the spooled statement of {sid} was refused: {exc}")
            return None

    def _record_lost(self, waiting: Any, facts: Sequence[JobFacts], spec: JobSpec) -> None:
        """The head records an attempt whose node left no statement: failed, saying why."""
        now = utc_now()
        note = (
            f"{self._ended(waiting, detailed=True)} before its jobstep delivered a signed "
            "statement: recorded by the head, nothing of the job's outputs is attested"
        )
        outcome = RunOutcome(
            exit_code=1, started_on=now, finished_on=now, isolated=False, isolation=note
        )
        for f in facts:
            self.recorder.record(
                f,
                outcome,
                input_digests=self.recorder.hash_inputs(f),
                invocation_id=spec.invocation_id
                if len(facts) == 1
                else f"{spec.invocation_id}/{f.jobid}",
                job_log=self._lost_log(spec),
            )

    def _collected(
        self, submission: Submission, receipt: Receipt, records: tuple[JobRecord, ...]
    ) -> None:
        self._note_measurements(records)
        with self._lock:
            for index, record in zip(receipt.indices, records, strict=True):
                self._records[index] = record
            waiting = self._waiting.get(submission.submission_id)
        if waiting is not None:
            waiting.done.set()

    def _note_measurements(self, records: Sequence[JobRecord]) -> None:
        """With a key broker: say in each task's key-less note what the node attested (the
        image's measurement its builder id names), as a local job's record does, so settlement
        attests as that job. Idempotent on the broker (same task, same challenge)."""
        source = self.recorder.challenge_source
        if source is None:
            return
        for record in records:
            if BUILDER_MEASUREMENT_MARK not in record.builder_id:
                continue
            measurement = record.builder_id.rsplit(BUILDER_MEASUREMENT_MARK, 1)[1].lower()
            try:
                source(record.task_id, measurement)
            except PoxError as exc:  # the record is in the log; only settlement needs the note
                self.logger.warning(
                    f"PoX: could not note the measurement of task {record.task_id} for "
                    f"settlement: {exc}"
                )

    # -- whole run -------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        self.server.close()
        self.collector.close()
