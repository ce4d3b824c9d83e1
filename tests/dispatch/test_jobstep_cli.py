"""`pox jobstep` as SLURM calls it: a bad ticket is a clear error (exit 2), never a traceback;
a good one runs the job, spools its signed statement and exits with the job's status."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from dispatch_nodes import dispatch_recorder, ticket_for
from recorded import Step

from pox_executor.dispatch.protocol import read_spool, write_ticket


def _jobstep(ticket: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pox_executor.cli", "jobstep", str(ticket)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_tickets_are_named_errors(tmp_path: Path) -> None:
    missing = _jobstep(tmp_path / "nope.json")
    assert missing.returncode == 2 and "cannot read job ticket" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "pox-job-ticket/v1", "run_id": 7}')
    result = _jobstep(bad)
    assert result.returncode == 2, result.stderr
    assert "bad.json: field 'spec' must be dict" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_job_exits_with_its_code_and_spools_a_failed_attempt(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    step = Step(1, "a", ("data.txt",), ("a.txt",), "exit 3")
    ticket = ticket_for(recorder, step, tmp_path / "spool")
    path = tmp_path / "ticket.json"
    write_ticket(path, ticket)
    result = _jobstep(path)
    assert result.returncode == 3, result.stderr
    spooled = read_spool(tmp_path / "spool", ticket.submission_id)
    assert spooled is not None and len(spooled.envelopes) == 1
    statement = json.loads(base64.b64decode(json.loads(spooled.envelopes[0])["payload"]))
    assert statement["predicate"]["buildDefinition"]["internalParameters"]["status"] == "failed"
