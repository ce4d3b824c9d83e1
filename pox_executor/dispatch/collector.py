"""The head-side collector: checks node-signed job statements and appends each to the log once.

In-process API: `Collector.submit(Submission) -> Receipt`. Network transport: `CollectorServer`
(HTTP on the head, `POST /v1/submissions`, bearer token) and `post_submission` (the node's
client, retrying). The spool directory (`protocol.write_spool`) is the third way in: the head
feeds spooled submissions to the same `submit`.

Checks, per envelope, before anything is appended: it is a job record of this run (not a session
entry), its task id is the one computed from (run, jobid, attempt), it is signed by a key its own
TEE evidence binds for that task (the node key: fresh per jobstep, generated where the job ran),
the evidence verifies (simulated evidence only when the run allows it), the attempt is one the
head dispatched under this submission id (when tickets are registered with `expect`), its bound
enclave challenge is the one the head's ticket gave its task (when `expect` names them), and every
file subject's sha256 equals the file on the shared filesystem (when a workdir is given).

Idempotent: a submission id already collected returns its first receipt (`duplicate=True`); the
same id with other content is refused; an envelope already in the log (a resend after a head
restart) is not appended again. No envelope of a refused submission is appended.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pox_executor.audit.evidence_check import check_evidence
from pox_executor.dispatch.protocol import MAX_SUBMISSION_BYTES, ProtocolError, Submission
from pox_executor.errors import PoxError, VerificationError
from pox_executor.provenance.digests import Hasher
from pox_executor.provenance.dsse import envelope_digest, verify_envelope
from pox_executor.provenance.keys import PublicKey
from pox_executor.provenance.names import is_external
from pox_executor.provenance.records import JobRecord, decode_line, job_task_id

# What appends an accepted envelope: returns (log index, envelope digest).
AppendFn = Callable[[bytes, JobRecord], tuple[int, str]]


class SubmissionRejected(VerificationError):
    """A submission failed a check; nothing of it was appended."""


class SubmissionConflict(SubmissionRejected):
    """A submission id already collected arrived again with other envelopes."""


@dataclass(frozen=True)
class Receipt:
    """What the collector did with a submission: the log index and digest of each envelope."""

    submission_id: str
    indices: tuple[int, ...]
    digests: tuple[str, ...]
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "indices": list(self.indices),
            "digests": list(self.digests),
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class Expected:
    """An attempt the head dispatched: the task ids a submission under this id may carry and,
    when given, the enclave challenge each task's record must bind."""

    task_ids: frozenset[str]
    challenges: Mapping[str, str | None] | None = None


class Collector:
    """Checks and appends node-signed job statements of one run. Thread-safe."""

    def __init__(
        self,
        run_id: str,
        append: AppendFn,
        *,
        workdir: Path | None = None,
        allow_simulated: bool = True,
        require_expected: bool = False,
        known_digests: Iterable[str] = (),
        on_collected: Callable[[Submission, Receipt, tuple[JobRecord, ...]], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._append = append
        self.workdir = workdir
        self.allow_simulated = allow_simulated
        self.require_expected = require_expected
        self._on_collected = on_collected
        self._lock = threading.Lock()
        self._receipts: dict[str, tuple[tuple[str, ...], Receipt]] = {}
        self._in_log: dict[str, int] = dict.fromkeys(known_digests, -1)
        self._expected: dict[str, Expected] = {}
        self._withdrawn: set[str] = set()
        self._hasher = Hasher() if workdir is not None else None
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0

    def expect(
        self,
        submission_id: str,
        task_ids: Iterable[str],
        *,
        challenges: Mapping[str, str | None] | None = None,
    ) -> None:
        """Register a dispatched attempt: only these task ids are accepted under this id, and
        (with `challenges`) only records binding the enclave challenge given for their task."""
        with self._lock:
            self._expected[submission_id] = Expected(
                frozenset(task_ids), dict(challenges) if challenges is not None else None
            )

    def withdraw(self, submission_id: str) -> Receipt | None:
        """Close a submission id: its receipt if it was collected, else None, and from now on
        refuse it (the head recorded the attempt itself, so a late statement must not add a
        second record of it)."""
        with self._lock:
            self._expected.pop(submission_id, None)
            self._withdrawn.add(submission_id)
            found = self._receipts.get(submission_id)
        return found[1] if found else None

    def receipt(self, submission_id: str) -> Receipt | None:
        with self._lock:
            found = self._receipts.get(submission_id)
        return found[1] if found else None

    def submit(self, submission: Submission) -> Receipt:
        """Check every envelope, then append them (once). Raises `SubmissionRejected`."""
        sid = submission.submission_id
        digests = tuple(envelope_digest(e) for e in submission.envelopes)
        with self._lock:
            earlier = self._receipts.get(sid)
        if earlier is not None:
            return self._repeat(sid, digests, earlier)
        try:
            records = tuple(self._check(sid, e, i) for i, e in enumerate(submission.envelopes))
        except SubmissionRejected:
            with self._lock:
                self.rejected += 1
            raise
        with self._lock:
            earlier = self._receipts.get(sid)  # a concurrent retry may have won the race
            if earlier is not None:
                return self._repeat_locked(sid, digests, earlier)
            if sid in self._withdrawn:
                self.rejected += 1
                raise SubmissionRejected(
                    f"submission {sid}: arrived after the head closed it (the attempt was "
                    "already recorded as lost); refused"
                )
            indices = []
            for line, record, digest in zip(submission.envelopes, records, digests, strict=True):
                if digest in self._in_log:
                    indices.append(self._in_log[digest])
                    continue
                index, _ = self._append(line, record)
                self._in_log[digest] = index
                indices.append(index)
            receipt = Receipt(sid, tuple(indices), digests)
            self._receipts[sid] = (digests, receipt)
            self.accepted += 1
        if self._on_collected is not None:
            self._on_collected(submission, receipt, records)
        return receipt

    def _repeat(
        self, sid: str, digests: tuple[str, ...], earlier: tuple[tuple[str, ...], Receipt]
    ) -> Receipt:
        with self._lock:
            return self._repeat_locked(sid, digests, earlier)

    def _repeat_locked(
        self, sid: str, digests: tuple[str, ...], earlier: tuple[tuple[str, ...], Receipt]
    ) -> Receipt:
        if earlier[0] != digests:
            self.rejected += 1
            raise SubmissionConflict(
                f"submission {sid}: already collected with other envelopes; refused"
            )
        self.duplicates += 1
        first = earlier[1]
        return Receipt(first.submission_id, first.indices, first.digests, duplicate=True)

    def _check(self, sid: str, line: bytes, position: int) -> JobRecord:
        where = f"submission {sid} envelope {position}"
        try:
            envelope, entry = decode_line(line, line_no=position + 1)
        except PoxError as exc:
            raise SubmissionRejected(f"{where}: not a PoX log entry: {exc}") from None
        if not isinstance(entry, JobRecord):
            raise SubmissionRejected(f"{where}: a node may submit job records only, not {entry}")
        if entry.run_id != self.run_id:
            raise SubmissionRejected(f"{where}: belongs to run {entry.run_id!r}, not {self.run_id}")
        expected_task = job_task_id(entry.run_id, entry.jobid, entry.attempt)
        if entry.task_id != expected_task:
            raise SubmissionRejected(
                f"{where}: the evidence binds task {entry.task_id[:18]}..., not this attempt's "
                f"{expected_task[:18]}..."
            )
        with self._lock:
            expected = self._expected.get(sid)
        if expected is None and self.require_expected:
            raise SubmissionRejected(f"{where}: no job was dispatched under this submission id")
        if expected is not None and entry.task_id not in expected.task_ids:
            raise SubmissionRejected(
                f"{where}: job {entry.jobid} attempt {entry.attempt} was not dispatched under "
                "this submission id"
            )
        if expected is not None and expected.challenges is not None:
            _check_challenge(entry, expected.challenges.get(entry.task_id), where)
        signer = _signer(envelope, entry, where)
        checked = check_evidence(
            entry.evidence,
            entry.binding,
            signer_public_hex=signer.hex(),
            allow_simulated=self.allow_simulated,
            attested_at=entry.finished_on,
            builder_id=entry.builder_id,
        )
        problems = [*checked.problems]
        if checked.measurement_problem:
            problems.append(checked.measurement_problem)
        if problems:
            raise SubmissionRejected(f"{where}: evidence: {'; '.join(problems)}")
        if entry.succeeded and self.workdir is not None:
            self._check_outputs(entry, where)
        return entry

    def _check_outputs(self, entry: JobRecord, where: str) -> None:
        assert self._hasher is not None and self.workdir is not None
        files = [s for s in entry.subjects if s.sha256 and not is_external(s.name)]
        try:
            digests = self._hasher.digest_paths([s.name for s in files], base=self.workdir)
        except (OSError, PoxError) as exc:
            raise SubmissionRejected(
                f"{where}: outputs not readable on the shared filesystem: {exc}"
            ) from None
        for subject, found in zip(files, digests, strict=True):
            if found.sha256 != subject.sha256:
                raise SubmissionRejected(
                    f"{where}: output {subject.name} on the shared filesystem has sha256 "
                    f"{found.sha256[:16]}..., the statement says {str(subject.sha256)[:16]}..."
                )

    def close(self) -> None:
        if self._hasher is not None:
            self._hasher.close()


def _check_challenge(entry: JobRecord, wanted: str | None, where: str) -> None:
    """The record binds the enclave challenge the head's ticket gave its task (a node must not
    bind another task's challenge, nor none)."""
    bound = entry.binding.enclave_challenge
    if (bound or "").lower() != (wanted or "").lower():
        raise SubmissionRejected(
            f"{where}: job {entry.jobid} attempt {entry.attempt} binds enclave challenge "
            f"{bound or 'none'}, not {wanted or 'none'}, the one the head's ticket gave this "
            "task; refused"
        )


def _signer(envelope: Mapping[str, Any], entry: JobRecord, where: str) -> PublicKey:
    """The key that signed the envelope, among the keys its evidence binds."""
    keys: dict[str, PublicKey] = {}
    for text in entry.binding.public_keys:
        try:
            key = PublicKey.from_hex(text)
        except PoxError:
            continue
        keys[key.keyid] = key
    try:
        verify_envelope(envelope, keys)
    except VerificationError as exc:
        raise SubmissionRejected(
            f"{where}: not signed by a key its evidence binds: {exc}"
        ) from None
    signed_ids = {
        str(s.get("keyid")) for s in envelope.get("signatures", []) if isinstance(s, dict)
    }
    for keyid, key in keys.items():
        if keyid in signed_ids:
            return key
    return next(iter(keys.values()))


# -- HTTP transport ---------------------------------------------------------------------------

SUBMISSIONS_PATH = "/v1/submissions"


class CollectorServer:
    """HTTP front of a collector, on the head: `POST /v1/submissions` with a bearer token.

    200 with the receipt (also for a repeated submission), 400 malformed, 401 bad token,
    409 conflicting resend, 422 a check failed. Listens on `host` (loopback by default; a cluster
    whose nodes reach the head over the network passes the head's address) and an ephemeral port.
    """

    def __init__(
        self, collector: Collector, token: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.collector = collector
        handler = _handler_for(collector, token)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pox-collector", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{port}{SUBMISSIONS_PATH}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler_for(collector: Collector, token: str) -> type[BaseHTTPRequestHandler]:
    expected_auth = f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # no per-request console noise

        def do_POST(self) -> None:
            if self.path != SUBMISSIONS_PATH:
                self._reply(404, {"error": f"unknown path {self.path}"})
                return
            auth = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(auth, expected_auth):
                self._reply(401, {"error": "missing or wrong collector token"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._reply(411, {"error": "Content-Length required"})
                return
            if length < 0 or length > MAX_SUBMISSION_BYTES:
                self._reply(413, {"error": f"body over {MAX_SUBMISSION_BYTES} bytes"})
                return
            body = self.rfile.read(length)
            try:
                submission = Submission.from_json(body, where="request body")
                receipt = collector.submit(submission)
            except SubmissionConflict as exc:
                self._reply(409, {"error": str(exc)})
            except SubmissionRejected as exc:
                self._reply(422, {"error": str(exc)})
            except ProtocolError as exc:
                self._reply(400, {"error": str(exc)})
            except PoxError as exc:
                self._reply(500, {"error": str(exc)})
            else:
                self._reply(200, receipt.to_json())

        def _reply(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class DeliveryError(PoxError):
    """A submission could not be delivered to the collector (refused, or it never answered)."""


def post_submission(
    url: str,
    token: str,
    submission: Submission,
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 30.0,
) -> Receipt:
    """Deliver a submission over HTTP, retrying on network errors and 5xx (idempotent)."""
    data = submission.to_json()
    last = "no attempt made"
    for attempt in range(max(1, attempts)):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                body = json.loads(response.read())
            return Receipt(
                submission_id=str(body["submission_id"]),
                indices=tuple(int(i) for i in body["indices"]),
                digests=tuple(str(d) for d in body["digests"]),
                duplicate=bool(body["duplicate"]),
            )
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            if exc.code < 500:
                raise DeliveryError(
                    f"the collector at {url} refused submission {submission.submission_id} "
                    f"(HTTP {exc.code}): {detail}"
                ) from None
            last = f"HTTP {exc.code}: {detail}"
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            last = str(getattr(exc, "reason", exc))
        if attempt + 1 < attempts:
            time.sleep(backoff_s * (2**attempt))
    raise DeliveryError(
        f"could not deliver submission {submission.submission_id} to {url} after {attempts} "
        f"attempts: {last}",
        hint="the submission stays in the spool directory; the head collects it from there",
    )


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)
