"""The head's collector, in-process and over HTTP: node-signed statements are checked, appended
once, and the finished run verifies with `pox verify`'s library function."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from dispatch_nodes import dispatch_recorder, node_submission
from recorded import DAG, resign, statement_of

from pox_executor.audit.verify import verify_run
from pox_executor.dispatch.collector import (
    Collector,
    CollectorServer,
    DeliveryError,
    SubmissionConflict,
    SubmissionRejected,
    post_submission,
)
from pox_executor.dispatch.protocol import Submission, read_spool
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.keys import SigningKey
from pox_executor.provenance.recorder import RunRecorder


def _collector(recorder: RunRecorder, **kwargs: object) -> Collector:
    return Collector(
        recorder.run_id,
        recorder.append_collected,
        workdir=recorder.workdir,
        **kwargs,  # type: ignore[arg-type]
    )


def _verify(recorder: RunRecorder) -> list[str]:
    recorder.finish("succeeded", [])
    report = verify_run(RunBundle.load(recorder.bundle.path), allow_simulated=True)
    return [f"{f.check}: {f.message}" for f in report.errors]


def test_node_signed_dag_is_collected_linked_and_verifies(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    collector = _collector(recorder)
    spool = tmp_path / "spool"
    for step in DAG:
        submission = node_submission(recorder, step, spool)
        assert read_spool(spool, submission.submission_id) == submission
        receipt = collector.submit(submission)
        assert not receipt.duplicate
    lines = recorder.bundle.attestations_path.read_bytes().splitlines()
    a, b = statement_of(lines[1]), statement_of(lines[2])
    session_key = recorder.key.public_key.hex()
    assert a["predicate"]["runDetails"]["byproducts"]  # attested on the node ...
    node_key = json.loads(lines[1])["signatures"][0]["keyid"]
    assert node_key != recorder.key.public_key.keyid  # ... with a key of its own
    assert session_key not in json.dumps(a)
    parents = [
        d
        for d in b["predicate"]["buildDefinition"]["resolvedDependencies"]
        if d["annotations"]["pox.kind"] == "parent-envelope"
    ]
    assert [p["digest"]["sha256"] for p in parents] == [recorder.log.envelope_digests()[1]]
    assert _verify(recorder) == []


def test_retries_are_collected_once_and_conflicts_refused(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    collector = _collector(recorder)
    submission = node_submission(recorder, DAG[0], tmp_path / "spool")
    first = collector.submit(submission)
    again = collector.submit(submission)
    assert again.duplicate and again.indices == first.indices
    assert recorder.log.size == 2  # opening + one record
    other = node_submission(recorder, DAG[0], tmp_path / "spool2")  # same id, new signature
    with pytest.raises(SubmissionConflict):
        collector.submit(other)
    assert recorder.log.size == 2
    # the same envelope under a new id (a resend after a head restart) is not appended twice
    renamed = collector.submit(Submission("renamed", submission.envelopes))
    assert renamed.indices == first.indices and recorder.log.size == 2


def test_refuses_what_the_node_did_not_attest(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    collector = _collector(recorder)
    submission = node_submission(recorder, DAG[0], tmp_path / "spool")
    statement = statement_of(submission.envelopes[0])
    forged = resign(statement, SigningKey.generate())  # a key the evidence does not bind
    with pytest.raises(SubmissionRejected, match="not signed by a key its evidence binds"):
        collector.submit(Submission("forged", (forged,)))
    (recorder.workdir / "a.txt").write_text("changed on the shared filesystem\n")
    with pytest.raises(SubmissionRejected, match=r"output a\.txt on the shared filesystem"):
        collector.submit(submission)
    with pytest.raises(SubmissionRejected, match="job records only"):
        collector.submit(
            Submission("opening", (recorder.bundle.attestations_path.read_bytes().splitlines()[0],))
        )
    assert recorder.log.size == 1 and collector.rejected == 3


def test_only_dispatched_attempts_are_accepted(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    collector = _collector(recorder, require_expected=True)
    submission = node_submission(recorder, DAG[0], tmp_path / "spool")
    with pytest.raises(SubmissionRejected, match="no job was dispatched"):
        collector.submit(submission)
    collector.expect(submission.submission_id, ["0x" + "0" * 64])
    with pytest.raises(SubmissionRejected, match="was not dispatched under this submission id"):
        collector.submit(submission)


def test_verify_rejects_node_keys_in_a_run_without_dispatch(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    submission = node_submission(recorder, DAG[0], tmp_path / "spool")
    plain = _plain_recorder(tmp_path / "plain")
    plain.log.append(submission.envelopes[0])  # signed by a node key its evidence binds
    plain.finish("succeeded", [])
    report = verify_run(RunBundle.load(plain.bundle.path), allow_simulated=True)
    assert "signer" in {f.check for f in report.errors}


def _plain_recorder(workdir: Path) -> RunRecorder:
    from recorded import new_recorder

    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text("#\n")
    recorder = new_recorder(workdir)
    recorder.record_sources(["Snakefile"], {})
    return recorder


def test_http_transport_concurrent_retries_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    collector = _collector(recorder)
    server = CollectorServer(collector, "secret-token")
    try:
        submissions = [node_submission(recorder, step, tmp_path / "spool") for step in DAG[:1]]
        with pytest.raises(DeliveryError, match="HTTP 401"):
            post_submission(server.url, "wrong", submissions[0], attempts=1)
        receipts = []

        def send() -> None:
            receipts.append(post_submission(server.url, "secret-token", submissions[0]))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(receipts) == 8 and sum(not r.duplicate for r in receipts) == 1
        assert recorder.log.size == 2
    finally:
        server.close()
    assert _verify(recorder) == []
