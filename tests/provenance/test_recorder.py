"""The recorder, in-process: sessions as signed log entries, status truth, names, resume.

Runs are recorded with the sim runtime without isolation (it really runs each command) and read
back with the one reader, `provenance/records.py`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from recorded import DAG, Step, crash, facts_of, new_recorder, record_run, run_step

from pox_executor.audit.verify import verify_run
from pox_executor.enclave.runtime import RunOutcome
from pox_executor.primitives import utc_now
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle, list_runs
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.recorder import discarded_writes_line
from pox_executor.provenance.records import (
    JobRecord,
    SessionClose,
    SessionOpen,
    job_task_id,
    read_entries,
    session_task_id,
    signed_requester,
)


def test_a_run_is_an_opening_its_records_and_a_closing(tmp_path: Path) -> None:
    run = record_run(tmp_path / "w", requester="0x" + "ab" * 20)
    entries = read_entries(run.bundle.attestations_path)
    opening, *jobs, closing = entries
    assert isinstance(opening, SessionOpen) and isinstance(closing, SessionClose)
    assert [j.rule for j in jobs if isinstance(j, JobRecord)] == ["a", "b", "c"]
    assert opening.run_id == run.bundle.run_id == closing.run_id
    assert opening.public_key == run.key.public_key
    assert opening.binding.task_id == session_task_id(run.bundle.run_id, 0)
    assert opening.binding.public_keys == (run.key.public_key.hex(),)
    assert [s.name for s in opening.workflow_sources] == ["Snakefile"]
    assert opening.continues is None
    assert signed_requester(entries) == "0x" + "ab" * 20
    assert (closing.size, closing.status, closing.succeeded, closing.failed) == (
        4,
        "succeeded",
        3,
        0,
    )
    for job in jobs:
        assert isinstance(job, JobRecord)
        assert job.task_id == job_task_id(run.bundle.run_id, job.jobid, job.attempt)
    # run.json is an index pointing at the signed opening
    (session,) = run.bundle.index.sessions
    assert (session.index, session.line, session.keyid) == (0, 1, run.key.public_key.keyid)
    assert run.bundle.index.status == "succeeded"


def test_parent_links_follow_the_dag(tmp_path: Path) -> None:
    run = record_run(tmp_path / "w")
    jobs = [e for e in read_entries(run.bundle.attestations_path) if isinstance(e, JobRecord)]
    a, b, c = jobs
    assert a.parents == []
    assert b.parents == [a.digest] and c.parents == [a.digest]


def test_exit_0_with_a_missing_output_is_a_failed_attempt(tmp_path: Path) -> None:
    lazy = Step(1, "lazy", ("data.txt",), ("promised.txt", "kept.txt"), "echo k > kept.txt")
    run = record_run(tmp_path / "w", [lazy])
    (job,) = [e for e in read_entries(run.bundle.attestations_path) if isinstance(e, JobRecord)]
    assert job.exit_code == 0
    assert job.status == "failed"
    assert job.missing_outputs == ("promised.txt",)
    assert [s.name for s in job.subjects] == ["kept.txt"]
    closing = read_entries(run.bundle.attestations_path)[-1]
    assert isinstance(closing, SessionClose) and closing.status == "failed"


def test_an_output_that_is_a_fifo_or_leaves_the_workdir_is_not_committed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n")
    workdir = tmp_path / "w"
    steps = [
        Step(1, "fifo", (), ("pipe",), "mkfifo pipe"),
        Step(2, "link", (), ("link.txt",), f"ln -s {outside} link.txt"),
    ]
    run = record_run(workdir, steps)
    fifo, link = [e for e in read_entries(run.bundle.attestations_path) if isinstance(e, JobRecord)]
    assert (fifo.status, fifo.missing_outputs) == ("failed", ("pipe",))
    assert (link.status, link.missing_outputs) == ("failed", ("link.txt",))


def test_a_fifo_input_is_named_but_never_read(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    os.mkfifo(workdir / "stream")
    step = Step(1, "reader", ("stream", "data.txt"), ("out.txt",), "echo x > out.txt")
    run = record_run(workdir, [step])  # would block forever if the recorder opened the FIFO
    (job,) = [e for e in read_entries(run.bundle.attestations_path) if isinstance(e, JobRecord)]
    stream = next(d for d in job.dependencies if d.name == "stream")
    assert stream.sha256 is None and stream.annotations["pox.not-regular"] is True


def test_names_outside_the_workdir_are_external(tmp_path: Path) -> None:
    reference = tmp_path / "reference.txt"
    reference.write_text("ref\n")
    step = Step(1, "r", (str(reference),), ("out.txt",), f"cat {reference} > out.txt")
    run = record_run(tmp_path / "w", [step])
    (job,) = [e for e in read_entries(run.bundle.attestations_path) if isinstance(e, JobRecord)]
    names = {d.name for d in job.dependencies}
    assert f"external:{reference}" in names


def test_a_rerun_with_nothing_to_do_leaves_no_bundle(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    record_run(workdir)
    recorder = new_recorder(workdir)
    assert len(list_runs(workdir)) == 1  # nothing on disk before a session opens ...
    recorder.finish("succeeded", [])
    assert recorder.removed
    assert len(list_runs(workdir)) == 1  # ... nor after: no empty "running" bundle is the latest


def test_a_resumed_run_states_the_log_it_continues(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    first = record_run(workdir, DAG[:1], finish=False)
    crash(first)
    prefix = read_log_lines(first.bundle.attestations_path).lines
    second = record_run(workdir, DAG[1:])
    entries = read_entries(second.bundle.attestations_path)
    openings = [e for e in entries if isinstance(e, SessionOpen)]
    assert [o.session for o in openings] == [0, 1]
    root = merkle.root([merkle.leaf_hash(line) for line in prefix]).hex()
    assert openings[1].continues == (len(prefix), root)
    assert openings[1].public_key != openings[0].public_key
    jobs = [e for e in entries if isinstance(e, JobRecord)]
    assert jobs[1].parents == [jobs[0].digest], "the resumed session links to the prefix"
    assert not [e for e in entries[:-1] if isinstance(e, SessionClose)], "no close for session 0"
    report = verify_run(RunBundle.load(second.bundle.path), allow_simulated=True)
    assert report.ok, [f.render() for f in report.errors]


def test_discarded_writes_make_one_console_line(tmp_path: Path) -> None:
    outcome = RunOutcome(
        exit_code=0,
        started_on="2026-12-01T00:00:00Z",
        finished_on="2026-12-01T00:00:01Z",
        isolated=True,
        isolation="test",
        discarded_writes=("wrote a", "wrote b", "wrote c", "wrote d"),
    )
    line = discarded_writes_line(facts_of(DAG[0]), outcome)
    assert line == (
        "PoX: job 1 (a): 4 writes outside its declared outputs were discarded: "
        "wrote a, wrote b, wrote c, ..."
    )
    assert discarded_writes_line(facts_of(DAG[0]), outcome.__class__(0, "", "", True, "")) is None


def test_records_concurrently_keep_one_opening(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "data.txt").write_text("x\n")
    recorder = new_recorder(workdir)
    steps = [
        Step(i, f"r{i}", ("data.txt",), (f"o{i}.txt",), f"echo {i} > o{i}.txt") for i in range(6)
    ]
    threads = [threading.Thread(target=run_step, args=(recorder, s)) for s in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.finish("succeeded", [])
    entries = read_entries(recorder.bundle.attestations_path)
    assert sum(isinstance(e, SessionOpen) for e in entries) == 1
    assert isinstance(entries[0], SessionOpen)
    assert sum(isinstance(e, JobRecord) for e in entries) == 6


def test_a_run_killed_after_its_closing_is_not_resumed(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    run = record_run(workdir)
    index = run.bundle.path / "run.json"
    index.write_text(index.read_text().replace('"status": "succeeded"', '"status": "running"'))
    recorder = new_recorder(workdir)
    assert not recorder.resumed
    assert RunBundle.load(run.bundle.path).index.status == "succeeded"
    recorder.finish("succeeded", [])


def test_a_deferred_opening_comes_first_and_says_when_the_sources_were_handed_over(
    tmp_path: Path,
) -> None:
    """The plugin opens the session with the first record (off the first job's way): the log
    still starts with the opening, dated before the job ran, and the run verifies."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "Snakefile").write_text("# recorded in-process\n")
    (workdir / "data.txt").write_text("alpha\n")
    recorder = new_recorder(workdir)
    recorder.record_sources(["Snakefile"], {}, open_now=False)
    assert not recorder.opened and not recorder.bundle.attestations_path.exists()
    handed_over = utc_now()
    for step in DAG:
        run_step(recorder, step)
    recorder.finish("succeeded", [])
    opening, *jobs, closing = read_entries(recorder.bundle.attestations_path)
    assert isinstance(opening, SessionOpen) and isinstance(closing, SessionClose)
    assert [j.rule for j in jobs if isinstance(j, JobRecord)] == ["a", "b", "c"]
    assert opening.started <= handed_over
    assert [s.name for s in opening.workflow_sources] == ["Snakefile"]
    report = verify_run(RunBundle.load(recorder.bundle.path), allow_simulated=True)
    assert report.ok, [f.render() for f in report.errors]
