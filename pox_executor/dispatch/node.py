"""The node side of dispatch: `pox jobstep TICKET` runs one job, attests and signs it here.

The job runs in the backend the ticket names (the same enclave runtimes as on one machine), its
inputs and outputs are hashed here, and its statement is built by the same recorder code as on
the head, but signed with a key made fresh for this jobstep and bound into this node's own TEE
evidence for the job's task id: the node never holds the head's session key, and the head cannot
forge what the node attests. Each member binds the enclave challenge the ticket gives its task (the
one the head's key broker made for it), else the session's. The signed envelope lines are
written to the spool directory on the shared filesystem first (durable: a head or network outage
loses nothing), then posted to the head's collector when the ticket names one. On SIGTERM
(`scancel`, a SLURM time limit) the job is stopped and its attempt is recorded as failed and
delivered before the process exits.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pox_executor.dispatch.collector import DeliveryError, post_submission
from pox_executor.dispatch.protocol import Submission, Ticket, remove_quietly, write_spool
from pox_executor.enclave.backends import BackendOptions, create_runtime
from pox_executor.enclave.runtime import EnclaveRuntime
from pox_executor.errors import EnclaveError
from pox_executor.provenance.digests import Hasher
from pox_executor.provenance.dsse import envelope_digest
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.recorder import RunRecorder

log = logging.getLogger(__name__)


class _CapturedLog:
    """Stands in for the run log on a node: keeps the signed lines to deliver to the head."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    @property
    def size(self) -> int:
        return len(self.lines)

    def append(self, line: bytes) -> tuple[int, str]:
        self.lines.append(line)
        return len(self.lines) - 1, envelope_digest(line)


class NodeRecorder(RunRecorder):
    """The recorder's statement building, on a node: no bundle, no session, a fresh key.

    Inherits `hash_inputs` and `record` unchanged, so a dispatched job's statement has exactly
    the form of a local one; only the signing key and where the line goes differ.
    """

    def __init__(self, ticket: Ticket, runtime: EnclaveRuntime) -> None:
        # Deliberately not calling RunRecorder.__init__: it opens the run bundle, which only
        # the head writes.
        self.workdir = ticket.spec.workdir
        self.runtime = runtime
        self.requester = None
        self._meta: dict[str, Any] = {}
        self.hasher = Hasher()
        self._lock = threading.RLock()
        self.run_id = ticket.run_id
        self.key = SigningKey.generate()
        self.enclave_challenge = ticket.enclave_challenge
        # the head made the challenges (the session's, or one per task on its key broker); the
        # node only binds what the ticket names for each member
        self.challenge_source = _TicketChallenges(ticket) if ticket.enclave_challenges else None
        self.log = _CapturedLog()  # type: ignore[assignment]
        self.producers = dict(ticket.producers)
        self._earlier = None
        self.source_digests = list(ticket.sources)
        self.config_sha256 = None
        self.counts = {"succeeded": 0, "failed": 0}
        self.opened = True
        self.removed = False

    @property
    def lines(self) -> tuple[bytes, ...]:
        captured = self.log
        assert isinstance(captured, _CapturedLog)
        return tuple(captured.lines)


class _TicketChallenges:
    """The ticket's task id -> challenge map, as the recorder asks a key broker for one."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket

    def __call__(self, task: str, measurement: str | None = None) -> str:
        address = self.ticket.challenge_for(task)
        assert address is not None  # a ticket with per-task challenges has one for each member
        return address


@dataclass(frozen=True)
class JobstepResult:
    exit_code: int
    succeeded: bool
    submission: Submission
    spool_path: Path
    delivered: bool


def run_jobstep(ticket: Ticket, *, cancelled: threading.Event | None = None) -> JobstepResult:
    """Run the ticket's job, sign its statement(s) here, spool them and deliver them."""
    from pox_executor.plugin import _create_touch_outputs

    cancelled = cancelled or threading.Event()
    spec = ticket.spec
    stage_root = spec.workdir / ".pox" / "stage" / f"jobstep-{spec.invocation_id}"
    runtime = create_runtime(
        ticket.backend,
        BackendOptions(
            isolate=ticket.isolate,
            default_image=ticket.default_image,
            shared_home=ticket.shared_home,
            stage_root=stage_root,
        ),
    )
    try:
        runtime.prepare(spec.workdir)
    except OSError as exc:
        raise EnclaveError(
            f"the {ticket.backend} runtime could not prepare on this node: {exc}"
        ) from None
    recorder = NodeRecorder(ticket, runtime)
    try:
        inputs = {f.jobid: recorder.hash_inputs(f) for f in ticket.members}
        try:
            outcome = runtime.run(spec, cancelled)
        finally:
            if ticket.script is not None:
                remove_quietly(ticket.script)
        if outcome.exit_code == 0:
            _create_touch_outputs(list(ticket.members), spec.workdir)
        succeeded = True
        for f in ticket.members:
            recorded = recorder.record(
                f,
                outcome,
                input_digests=inputs[f.jobid],
                invocation_id=spec.invocation_id
                if len(ticket.members) == 1
                else f"{spec.invocation_id}/{f.jobid}",
                job_log=spec.log_path,
            )
            succeeded = succeeded and recorded.succeeded
    finally:
        recorder.hasher.close()
        shutil.rmtree(stage_root, ignore_errors=True)
    submission = Submission(ticket.submission_id, recorder.lines)
    path = write_spool(ticket.spool_dir, submission)
    delivered = False
    if ticket.collector_url and ticket.collector_token:
        try:
            post_submission(ticket.collector_url, ticket.collector_token, submission)
            delivered = True
        except DeliveryError as exc:
            # the spooled copy is collected by the head when SLURM reports the job ended
            print(f"pox jobstep: {exc}; left in {path}", file=sys.stderr)
    return JobstepResult(outcome.exit_code, succeeded, submission, path, delivered)


def run_jobstep_until_signalled(ticket: Ticket) -> JobstepResult:
    """`run_jobstep` with SIGTERM/SIGINT stopping the job (its attempt is still recorded)."""
    cancelled = threading.Event()
    previous: Mapping[int, Any] = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)
    }

    def stop(signum: int, frame: FrameType | None) -> None:
        cancelled.set()

    for sig in previous:
        signal.signal(sig, stop)
    try:
        return run_jobstep(ticket, cancelled=cancelled)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
