"""Enclave challenges of dispatched jobs: one per task from a real key broker (`--pox-sms`), bound
on the node, checked by the head's collector; the session's challenge without a broker.

The broker is a real `pox sms serve` process on loopback (tests/sms/broker_process.py); the jobs
go through the Kubernetes dispatcher with each Job's container command (`pox jobstep TICKET`) run
as a real local process (`LocalJobs`, as in test_kubernetes_dispatch.py), posting to the head's
HTTP collector, and through real Snakemake with `--pox-dispatch slurm --pox-sms` on the test
SLURM cluster (conftest.py).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster
from dispatch_nodes import dispatch_recorder, ticket_for
from recorded import DAG, Step, facts_of
from test_kubernetes_dispatch import LocalJobs, dispatcher, run, spec_of, verify
from test_slurm import _finish, _snakemake, _verify, _workflow

from pox_executor.dispatch.collector import Collector, SubmissionRejected
from pox_executor.dispatch.node import run_jobstep
from pox_executor.dispatch.protocol import ProtocolError, Ticket, read_ticket, write_ticket
from pox_executor.enclave.runtime import exec_command
from pox_executor.provenance.recorder import RunRecorder
from pox_executor.provenance.records import JobRecord, SessionOpen, job_task_id, read_entries
from pox_executor.sms.scheduler import BrokerChallengeSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sms"))

from broker_process import BrokerProcess

OTHER = Step(4, "d", ("data.txt",), ("d.txt",), "wc -c < data.txt > d.txt")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("sms") / "sms-state")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def broker_recorder(workdir: Path, broker: BrokerProcess) -> RunRecorder:
    source = BrokerChallengeSource(broker.url, broker.token, workdir, measurement="dispatch-test")
    return dispatch_recorder(workdir, challenge_source=source)


def held_by_broker(broker: BrokerProcess, task: str) -> str:
    """The address of the challenge the broker holds for `task` (read from its state)."""
    record = json.loads((broker.state_dir / "challenges" / f"{task}.json").read_text())
    assert "box" in record  # the key is sealed there, never handed to the head
    return str(record["address"])


def records_of(recorder: RunRecorder) -> list[JobRecord]:
    entries = read_entries(recorder.bundle.attestations_path)
    return [e for e in entries if isinstance(e, JobRecord)]


@pytest.mark.integration
def test_dispatched_jobs_bind_their_own_broker_challenges(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    recorder = broker_recorder(tmp_path / "wd", broker)
    cluster = LocalJobs()
    head = dispatcher(recorder, cluster)
    try:
        assert run(head, recorder, DAG[0]) is None
        assert run(head, recorder, OTHER) is None
    finally:
        head.close()
        cluster.stop()
    assert verify(recorder, "succeeded") == []
    records = records_of(recorder)
    assert sorted(r.jobid for r in records) == [1, 4]
    bound = {r.jobid: r.binding.enclave_challenge for r in records}
    for r in records:
        assert r.task_id == job_task_id(recorder.run_id, r.jobid, r.attempt)
        assert bound[r.jobid] == held_by_broker(broker, r.task_id)
    (opening,) = [
        e for e in read_entries(recorder.bundle.attestations_path) if isinstance(e, SessionOpen)
    ]
    assert len({bound[1], bound[4], opening.binding.enclave_challenge}) == 3
    # the head kept key-less notes only
    keys = recorder.workdir / ".pox" / "enclave-keys"
    assert not list(keys.glob("*.key"))
    assert {p.stem for p in keys.glob("*.sms")} >= {bound[1], bound[4]}
    for r in records:  # the note names what the node attested, as settlement must present it
        note = json.loads((keys / f"{bound[r.jobid]}.sms").read_text())
        assert note["task_id"] == r.task_id
        assert note["measurement"] == r.builder_id.rsplit("@sha256:", 1)[1] != "dispatch-test"


@pytest.mark.integration
def test_a_node_binding_another_tasks_challenge_is_refused(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    recorder = broker_recorder(tmp_path / "wd", broker)
    cluster = LocalJobs()
    head = dispatcher(recorder, cluster)
    try:
        assert run(head, recorder, OTHER) is None  # a genuine task whose challenge to steal
        (stolen,) = [r.binding.enclave_challenge for r in records_of(recorder)]
        facts, spec = facts_of(DAG[0]), spec_of(recorder, DAG[0])
        ticket, path = head._write_ticket([facts], spec, None)  # the head's real ticket
        task = job_task_id(recorder.run_id, facts.jobid, facts.attempt)
        assert ticket.enclave_challenges == {task: held_by_broker(broker, task)} != {task: stolen}
        # an attacker on the node edits the ticket it was given, then runs the job and posts
        forged = dataclasses.replace(read_ticket(path), enclave_challenges={task: stolen})
        write_ticket(path, forged)
        result = run_jobstep(read_ticket(path))
        assert result.succeeded and not result.delivered  # the collector said 422
        with pytest.raises(SubmissionRejected, match=f"binds enclave challenge {stolen}"):
            head.collector.submit(result.submission)
        head.collector.withdraw(ticket.submission_id)
    finally:
        head.close()
        cluster.stop()
    assert [r.jobid for r in records_of(recorder)] == [4]  # nothing of the forgery appended
    assert head.collector.rejected >= 2


@pytest.mark.integration
def test_snakemake_on_slurm_with_a_broker_binds_a_challenge_per_task(
    slurm_cluster: Cluster,
    tmp_path: Path,
    broker: BrokerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workdir = _workflow(tmp_path)
    monkeypatch.setenv("SNAKEMAKE_POX_SMS", broker.url)
    monkeypatch.setenv("POX_SMS_TOKEN", broker.token)
    _finish(_snakemake(slurm_cluster, workdir, "--config", "parts=2"))
    _verify(workdir)
    (bundle,) = (workdir / ".pox" / "runs").iterdir()
    entries = read_entries(bundle / "attestations.intoto.jsonl")
    jobs = [e for e in entries if isinstance(e, JobRecord)]
    (opening,) = [e for e in entries if isinstance(e, SessionOpen)]
    assert sorted(j.rule for j in jobs) == ["all", "part", "part", "summary"]
    bound = [j.binding.enclave_challenge for j in jobs]
    for job, address in zip(jobs, bound, strict=True):
        assert address == held_by_broker(broker, job.task_id)
    assert len({*bound, opening.binding.enclave_challenge}) == len(jobs) + 1


def test_without_a_broker_every_member_binds_the_session_challenge(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    session = recorder.enclave_challenge
    assert session is not None
    spool = tmp_path / "spool"
    ticket = ticket_for(recorder, DAG[0], spool)
    assert ticket.enclave_challenges == {}
    task = job_task_id(recorder.run_id, 1, 1)
    collector = Collector(recorder.run_id, recorder.append_collected, workdir=recorder.workdir)
    try:
        collector.expect(ticket.submission_id, [task], challenges={task: session})
        honest = run_jobstep(ticket).submission
        assert collector.submit(honest).indices
        (record,) = records_of(recorder)
        assert record.binding.enclave_challenge == session
        # a node binding a challenge of its own choosing is refused
        retry = ticket_for(recorder, dataclasses.replace(DAG[0], attempt=2), spool)
        task2 = job_task_id(recorder.run_id, 1, 2)
        collector.expect(retry.submission_id, [task2], challenges={task2: session})
        own = "0x" + "11" * 20
        forged = run_jobstep(dataclasses.replace(retry, enclave_challenge=own)).submission
        with pytest.raises(SubmissionRejected, match=f"binds enclave challenge {own}, not"):
            collector.submit(forged)
    finally:
        collector.close()


def test_ticket_challenges_round_trip_and_old_tickets_read(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    ticket = ticket_for(recorder, DAG[0], tmp_path / "spool")
    task = job_task_id(recorder.run_id, 1, 1)
    address = "0x" + "ab" * 20
    with_map = dataclasses.replace(ticket, enclave_challenges={task: address})
    again = Ticket.from_json(with_map.to_json(), where="t.json")
    assert again.enclave_challenges == {task: address}
    assert again.challenge_for(task) == address
    # a ticket written before per-task challenges (no such field): the session's challenge
    old = json.loads(ticket.to_json())
    del old["enclave_challenges"]
    read = Ticket.from_json(json.dumps(old).encode(), where="old.json")
    assert read.enclave_challenges == {}
    assert read.challenge_for(task) == recorder.enclave_challenge


@pytest.mark.parametrize(
    ("challenges", "said"),
    [
        ({"0x" + "00" * 32: "0x" + "ab" * 20}, "no challenge for job 1 attempt 1"),
        ({"task-1": "0x" + "ab" * 20}, "must map task ids"),
        ("0xab", "field 'enclave_challenges' must be dict"),
    ],
)
def test_malformed_ticket_challenges_are_refused_naming_the_field(
    tmp_path: Path, challenges: object, said: str
) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    raw = json.loads(ticket_for(recorder, DAG[0], tmp_path / "spool").to_json())
    raw["enclave_challenges"] = challenges
    with pytest.raises(ProtocolError, match=said) as refused:
        Ticket.from_json(json.dumps(raw).encode(), where="bad.json")
    assert str(refused.value).startswith("bad.json")


def test_ticket_argv_round_trips_and_must_be_what_its_command_starts(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    ticket = ticket_for(recorder, DAG[0], tmp_path / "spool")
    argv = ("/usr/bin/bash", "-c", "echo 'x' > out.txt")
    spec = dataclasses.replace(ticket.spec, argv=argv, command=exec_command(argv))
    again = Ticket.from_json(dataclasses.replace(ticket, spec=spec).to_json(), where="t.json")
    assert again.spec.argv == argv and again.spec.shell_argv() == list(argv)
    raw = json.loads(dataclasses.replace(ticket, spec=spec).to_json())
    del raw["spec"]["argv"]  # a ticket of an older head: the command goes through sh
    assert Ticket.from_json(json.dumps(raw).encode(), where="old.json").spec.argv == ()
    for bad in (["/usr/bin/bash", "-c", "rm -rf ~"], ["/usr/bin/bash", 7]):
        raw["spec"]["argv"] = bad  # argv must start what the command line (the log's) says
        with pytest.raises(ProtocolError, match="spec field 'argv' must be") as refused:
            Ticket.from_json(json.dumps(raw).encode(), where="bad.json")
        assert str(refused.value).startswith("bad.json")
