"""Settlement planning and its journal, in process (no node): which log entries become PoCo
tasks, that the ids are PoCo's, that a batched deal's orders carry the batch tag, that signed
entries which are not SLSA provenance are anchored but never settled as jobs, and that the
journal loader names the field that is wrong; and which run, profile and deals mode
`pox anchor` settles."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest
from recorded import Step, record_run

from pox_executor.chain import poco
from pox_executor.chain.ids import orders, run_id_bytes
from pox_executor.chain.jobs import read_job
from pox_executor.chain.journal import Journal, load_journal, parse_journal, save_journal
from pox_executor.chain.planning import plan
from pox_executor.chain.settle import resolve_anchor_target
from pox_executor.errors import BundleError, UsageError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.log import read_log_lines

ACCOUNTS = {
    "requester": "0x" + "11" * 20,
    "scheduler": "0x" + "22" * 20,
    "worker": "0x" + "33" * 20,
}
CONTRACTS = {
    "AppRegistry": "0x" + "a1" * 20,
    "WorkerpoolRegistry": "0x" + "a2" * 20,
    "PocoHub": "0x" + "a3" * 20,
    "WorkflowRunRegistry": "0x" + "a4" * 20,
}


@functools.cache
def _recorded_lines() -> tuple[bytes, ...]:
    """A real run recorded in-process (tests/recorded.py): its session-open, one job per output
    of rule `make`, and its session-close, exactly as the recorder writes them."""
    workdir = Path(tempfile.mkdtemp(prefix="pox-settle-plan-"))
    steps = [
        Step(i + 1, "make", ("data.txt",), (name,), f"cp data.txt {name}")
        for i, name in enumerate(OUTPUTS)
    ]
    run = record_run(workdir, steps)
    lines = tuple(read_log_lines(run.bundle.attestations_path).lines)
    shutil.rmtree(workdir, ignore_errors=True)
    return lines


OUTPUTS = ("a.txt", "b.txt", "c.txt", "0.txt", "1.txt", "2.txt")


def job_line(rule: str, output: str) -> bytes:
    assert rule == "make"
    return _recorded_lines()[1 + OUTPUTS.index(output)]


def session_line() -> bytes:
    return _recorded_lines()[0]


def new_journal(deals: str) -> Journal:
    return Journal(
        run_id="run-1",
        registry_run_id="0x" + run_id_bytes("run-1").hex(),
        origin="pox/run/run-1",
        profile="local",
        chain_id=8995,
        contracts=dict(CONTRACTS),
        deals=deals,
        accounts=dict(ACCOUNTS),
    )


def test_session_entries_are_anchored_but_not_settled() -> None:
    lines = [session_line(), job_line("make", "a.txt"), job_line("make", "b.txt"), session_line()]
    assert read_job(0, lines[0]) is None
    job = read_job(1, lines[1])
    assert job is not None and job.rule == "make" and job.enclave is not None
    assert read_job(len(OUTPUTS) + 1, _recorded_lines()[-1]) is None  # the session-close
    journal = new_journal("per-job")
    root = merkle.root([merkle.leaf_hash(line) for line in lines])
    plan(journal, lines, len(lines), root)
    assert [r.index for r in journal.records] == [1, 2]
    assert journal.planned_size == 4
    kinds = [a.kind for a in journal.actions]
    assert kinds.count("match") == 2 and kinds.count("finalize") == 2
    anchor = journal.actions[-1]
    assert anchor.kind == "anchor" and anchor.params["size"] == 4
    assert anchor.params["task_ids"] == [r.task for r in journal.records]
    for record in journal.records:
        assert record.deal is not None and record.idx is not None
        assert record.task == "0x" + poco.task_id(bytes.fromhex(record.deal[2:]), record.idx).hex()
    # planning again at the same size adds nothing; a grown log adds only the new entries
    assert plan(journal, lines, len(lines), root) == 0
    more = [*lines, job_line("make", "c.txt")]
    plan(journal, more, len(more), merkle.root([merkle.leaf_hash(line) for line in more]))
    assert [r.index for r in journal.records] == [1, 2, 4]


def test_batched_deals_carry_the_batch_tag() -> None:
    lines = [job_line("make", f"{i}.txt") for i in range(3)]
    journal = new_journal("batched")
    plan(journal, lines, 3, merkle.root([merkle.leaf_hash(line) for line in lines]))
    (match,) = [a for a in journal.actions if a.kind == "match"]
    (batch,) = [a for a in journal.actions if a.kind == "finalize_batch"]
    assert batch.params["count"] == 3 and "initialize" not in {a.kind for a in journal.actions}
    book = orders(
        app=match.params["app"],
        pool=str(journal.workerpool),
        requester=ACCOUNTS["requester"],
        volume=3,
        salt=bytes.fromhex(match.params["salt"][2:]),
        params=match.params["params"],
        batched=True,
    )
    for order_type in ("RequestOrder", "WorkerpoolOrder"):
        assert int.from_bytes(book[order_type]["tag"], "big") & poco.TAG_BATCHED
    assert not int.from_bytes(book["AppOrder"]["tag"], "big") & poco.TAG_BATCHED
    request_hash = poco.order_hash("RequestOrder", book["RequestOrder"], 8995, CONTRACTS["PocoHub"])
    assert match.params["deal"] == "0x" + poco.deal_id(request_hash, 0).hex()


def test_journal_round_trips_through_its_one_writer(tmp_path: Path) -> None:
    bundle = RunBundle(tmp_path, {"run_id": "run-1"})
    journal = new_journal("batched")
    lines = [job_line("make", "a.txt")]
    plan(journal, lines, 1, merkle.root([merkle.leaf_hash(lines[0])]))
    save_journal(bundle, journal)
    assert load_journal(bundle) == journal


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d.update(format="pox-chain/v1"), "field 'format'"),
        (lambda d: d.update(chain_id="8995"), "field 'chain_id' should be int"),
        (lambda d: d.update(records="x"), "field 'records' should be list"),
        (lambda d: d["actions"][0].update(kind="mint"), "field 'actions[0].kind' is 'mint'"),
        (
            lambda d: d["actions"][0]["params"].pop("address"),
            "field 'actions[0].params.address' is missing",
        ),
        (lambda d: d["accounts"].pop("requester"), "field 'accounts.requester' is missing"),
        (lambda d: d["records"][0].update(index=True), "field 'records[0].index' should be int"),
        (lambda d: d.update(actions=[7]), "field 'actions[0]' should be an object, found int"),
    ],
)
def test_journal_loader_names_the_bad_field(mutate: object, words: str) -> None:
    journal = new_journal("per-job")
    lines = [job_line("make", "a.txt")]
    plan(journal, lines, 1, merkle.root([merkle.leaf_hash(lines[0])]))
    doc = journal.to_document()
    assert parse_journal(doc, "chain.json") == journal
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(BundleError, match=r"^chain\.json: ") as info:
        parse_journal(doc, "chain.json")
    assert words in str(info.value)


def test_a_line_that_is_not_an_envelope_is_a_clear_error() -> None:
    with pytest.raises(BundleError, match="log record 7"):
        read_job(7, b"not json")


def test_anchor_target_prefers_flags_then_journal_then_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("POX_DATA_DIR", str(tmp_path / "data"))
    bundle = RunBundle.create(tmp_path, {"chain": {"profile": "none", "deals": "per-job"}})
    target = resolve_anchor_target(None, tmp_path)
    assert (target.bundle.run_id, target.profile.name, target.deals) == (
        bundle.run_id,
        "local",  # recorded with `none`: anchored later on the local devnet
        "per-job",
    )
    assert resolve_anchor_target(bundle.run_id[:10], tmp_path, deals="batched").deals == "batched"
    journal = new_journal("none")
    journal.run_id = bundle.run_id
    save_journal(bundle, journal)
    assert resolve_anchor_target(str(bundle.path), tmp_path).deals == "none"
    with pytest.raises(UsageError, match="nothing to do"):
        resolve_anchor_target(None, tmp_path, chain="none")
    with pytest.raises(UsageError, match="deals mode 'all'"):
        resolve_anchor_target(None, tmp_path, deals="all")
