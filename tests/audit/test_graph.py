"""The provenance graph (`audit/graph.py`) over runs recorded in-process: nodes, edges, the
verified flag taken from `verify_run`, and inputs that came from an earlier run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from recorded import DAG, RecordedRun, Step, record_run, resign, statement_of

from pox_executor.audit.graph import (
    FILE,
    JOB,
    build_graph,
    file_node,
    job_dag,
    jobs_of,
    producer_of,
    run_graph,
)
from pox_executor.primitives import sha256_bytes
from pox_executor.provenance.bundle import RunBundle, list_runs


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordedRun, RecordedRun]:
    """Run 1 is the three-job DAG; run 2, in the same directory, consumes b.txt from run 1."""
    workdir = tmp_path_factory.mktemp("graph") / "w"
    first = record_run(workdir)
    second = record_run(workdir, (Step(1, "d", ("b.txt",), ("d.txt",), "cat b.txt b.txt > d.txt"),))
    return first, second


def test_nodes_and_edges_of_one_run(two_runs: tuple[RecordedRun, RecordedRun]) -> None:
    first, _ = two_runs
    graph = build_graph([first.bundle], allow_simulated=True)
    jobs = jobs_of(graph, first.bundle.run_id)
    assert [graph.nodes[j]["rule"] for j in jobs] == ["a", "b", "c"]
    a = graph.nodes[jobs[0]]
    assert a["kind"] == JOB and a["status"] == "succeeded" and a["verified"] is True
    assert a["evidence_type"] == "sim-report" and a["simulated"] is True
    assert a["image_digest"].startswith("sha256:") and a["measurement"]
    assert a["started"] and a["finished"] and a["code"][0]["command"] == "cat data.txt > a.txt"
    workdir = first.bundle.workdir
    a_txt = file_node("a.txt", sha256_bytes((workdir / "a.txt").read_bytes()))
    assert graph.nodes[a_txt]["kind"] == FILE
    assert producer_of(graph, a_txt) == jobs[0]
    assert {graph.nodes[c]["rule"] for c in graph.successors(a_txt)} == {"b", "c"}
    for consumer in graph.successors(a_txt):
        assert graph.edges[a_txt, consumer]["producer"] == jobs[0]
    raw = file_node("data.txt", sha256_bytes(b"alpha\n"))
    assert graph.edges[raw, jobs[0]]["producer"] is None
    dag = job_dag(graph, first.bundle.run_id)
    assert sorted(dag.edges) == sorted([(jobs[0], jobs[1]), (jobs[0], jobs[2])])
    assert dag.edges[jobs[0], jobs[1]]["files"] == ["a.txt"]


def test_strict_verification_marks_simulated_jobs_unverified(
    two_runs: tuple[RecordedRun, RecordedRun],
) -> None:
    first, _ = two_runs
    graph = build_graph([first.bundle])
    for job in jobs_of(graph):
        assert graph.nodes[job]["verified"] is False
        assert any(p.startswith("simulated:") for p in graph.nodes[job]["problems"])
    assert graph.graph["runs"][first.bundle.run_id]["ok"] is False


def test_an_input_from_an_earlier_run_leads_to_its_producer(
    two_runs: tuple[RecordedRun, RecordedRun],
) -> None:
    first, second = two_runs
    graph = run_graph(second.bundle, allow_simulated=True)
    (d,) = jobs_of(graph, second.bundle.run_id)
    (b_txt,) = list(graph.predecessors(d))
    producer = graph.edges[b_txt, d]["producer"]
    assert graph.nodes[producer]["run_id"] == first.bundle.run_id
    assert graph.nodes[producer]["rule"] == "b"
    assert graph.edges[b_txt, d]["matched"] == "recorded"
    assert set(graph.graph["runs"]) == {first.bundle.run_id, second.bundle.run_id}


def test_a_forged_record_is_unverified_and_the_others_stay_verified(
    two_runs: tuple[RecordedRun, RecordedRun], tmp_path: Path
) -> None:
    first, _ = two_runs
    copy = tmp_path / "w"
    shutil.copytree(first.bundle.workdir, copy)
    bundle = next(b for b in list_runs(copy) if b.run_id == first.bundle.run_id)
    lines = bundle.attestations_path.read_bytes().splitlines()
    statement = statement_of(lines[2])  # job b
    statement["predicate"]["buildDefinition"]["externalParameters"]["rule"] = "forged"
    from pox_executor.provenance.keys import SigningKey

    lines[2] = resign(statement, SigningKey.generate())
    bundle.attestations_path.write_bytes(b"\n".join(lines) + b"\n")
    graph = build_graph([RunBundle.load(bundle.path)], allow_simulated=True)
    by_rule = {graph.nodes[j]["rule"]: graph.nodes[j] for j in jobs_of(graph)}
    assert by_rule["forged"]["verified"] is False
    assert any("signer" in p for p in by_rule["forged"]["problems"])
    # the Merkle root no longer matches either: a run-level error, so nothing is verified
    assert by_rule["a"]["verified"] is False


def test_graph_without_verification(two_runs: tuple[RecordedRun, RecordedRun]) -> None:
    first, _ = two_runs
    graph = build_graph([first.bundle], verify=False)
    assert all(graph.nodes[j]["verified"] is None for j in jobs_of(graph))
    assert len(jobs_of(graph)) == len(DAG)
