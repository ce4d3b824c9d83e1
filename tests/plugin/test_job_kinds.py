"""Every Snakemake job kind goes through PoX and leaves exactly the records it should.

One small workflow covers them all (issue 2, point 2): a shell rule, a `run:` block, a `script:`
rule, a rule in `localrules`, a `group:` of two rules, a `checkpoint` with the jobs created after
it, `temp()` and `directory()` outputs, and a rule that fails on attempt 1 and succeeds on attempt
2 (`--retries 1`). It runs once for the module; each test reads the bundle and checks one property
of the statements, recomputing digests with hashlib rather than trusting PoX's own reader.
Two more tiny runs show a job failing for good and `--pox-no-isolation`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from poxrun import Record, only_bundle, pox, read_records, run_json, run_snakemake, sha256_of

from pox_executor.enclave.environment import host_environment

pytestmark = pytest.mark.integration

RAW = "alpha\nbeta\ngamma\n"

COUNT_SCRIPT = """\
# A `script:` rule: count the lines of the input.
text = open(snakemake.input[0]).read()
with open(snakemake.output[0], "w") as out:
    out.write(f"{len(text.splitlines())} lines\\n")
"""

SNAKEFILE = """\
import os

localrules: local_copy


rule all:
    input:
        "shell.txt", "run.txt", "script.txt", "local.txt", "g2.txt",
        "aggregated.txt", "listing.txt", "retried.txt", "tamper.txt",


rule upper:
    input: "data/raw.txt"
    output: "shell.txt"
    shell: "tr a-z A-Z < {input} > {output}; echo stray > stray.txt"


rule reverse:
    input: "shell.txt"
    output: "run.txt"
    run:
        with open(input[0]) as src, open(output[0], "w") as dst:
            dst.write(src.read()[::-1])


rule count:
    input: "shell.txt"
    output: "script.txt"
    script: "scripts/count.py"


rule local_copy:
    input: "run.txt"
    output: "local.txt"
    shell: "cp {input} {output}"


rule g1:
    input: "data/raw.txt"
    output: "g1.txt"
    group: "pair"
    shell: "wc -l < {input} > {output}"


rule g2:
    input: "g1.txt"
    output: "g2.txt"
    group: "pair"
    shell: "cat {input} {input} > {output}"


checkpoint split:
    input: "data/raw.txt"
    output: directory("parts")
    shell: "mkdir -p {output} && split -l 2 -d --additional-suffix=.txt {input} {output}/p"


rule process_part:
    input: "parts/{part}.txt"
    output: temp("processed/{part}.txt")
    shell: "rev {input} > {output}"


def processed_parts(wildcards):
    parts = checkpoints.split.get().output[0]
    names = glob_wildcards(os.path.join(parts, "{part}.txt")).part
    return sorted(expand("processed/{part}.txt", part=names))


rule aggregate:
    input: processed_parts
    output: "aggregated.txt"
    shell: "cat {input} > {output}"


rule listing:
    input: "parts"
    output: "listing.txt"
    shell: "ls {input} > {output}"


# Runs after the checkpoint: Snakemake 9.27 drops a pending retry when a checkpoint
# re-evaluates the DAG in between (the local executor behaves the same).
rule flaky:
    input: "aggregated.txt"
    output: "retried.txt"
    resources: attempt=lambda wildcards, attempt: attempt
    shell: "test {resources.attempt} -gt 1 && echo attempt {resources.attempt} > {output}"


rule tamper:
    input: "data/raw.txt"
    output: "tamper.txt"
    shell: "echo x >> {input}; cat {input} > {output}"
"""

# (rule, wildcards, attempt, status) of every record the run must hold, each exactly once.
EXPECTED_RECORDS = Counter(
    [
        ("all", (), 1, "succeeded"),
        ("upper", (), 1, "succeeded"),
        ("reverse", (), 1, "succeeded"),
        ("count", (), 1, "succeeded"),
        ("local_copy", (), 1, "succeeded"),
        ("g1", (), 1, "succeeded"),
        ("g2", (), 1, "succeeded"),
        ("split", (), 1, "succeeded"),
        ("process_part", (("part", "p00"),), 1, "succeeded"),
        ("process_part", (("part", "p01"),), 1, "succeeded"),
        ("aggregate", (), 1, "succeeded"),
        ("listing", (), 1, "succeeded"),
        ("flaky", (), 1, "failed"),
        ("flaky", (), 2, "succeeded"),
        ("tamper", (), 1, "succeeded"),
    ]
)

OUTPUTS = {
    "upper": ["shell.txt"],
    "reverse": ["run.txt"],
    "count": ["script.txt"],
    "local_copy": ["local.txt"],
    "g1": ["g1.txt"],
    "g2": ["g2.txt"],
    "split": ["parts"],
    "aggregate": ["aggregated.txt"],
    "listing": ["listing.txt"],
    "flaky": ["retried.txt"],
    "tamper": ["tamper.txt"],
}
# temp() outputs are deleted by the end of the run: their bytes follow from their inputs.
TEMP_CONTENT = {"processed/p00.txt": "ahpla\nateb\n", "processed/p01.txt": "ammag\n"}


@dataclass
class Run:
    workdir: Path
    bundle: Path
    records: list[Record]
    meta: dict[str, Any]

    def one(self, rule: str, **wildcards: str) -> Record:
        found = [
            r
            for r in self.records
            if r.rule == rule and r.wildcards == wildcards and r.status == "succeeded"
        ]
        assert len(found) == 1, f"{rule} {wildcards}: {len(found)} successful records"
        return found[0]


def write_workflow(workdir: Path) -> None:
    (workdir / "data").mkdir(parents=True)
    (workdir / "scripts").mkdir()
    (workdir / "data" / "raw.txt").write_text(RAW)
    (workdir / "scripts" / "count.py").write_text(COUNT_SCRIPT)
    (workdir / "Snakefile").write_text(SNAKEFILE)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("job-kinds") / "wf"
    write_workflow(workdir)
    run_snakemake(workdir, "--retries", "1")
    bundle = only_bundle(workdir)
    return Run(workdir, bundle, read_records(bundle), run_json(bundle))


def test_every_job_has_exactly_its_records(run: Run) -> None:
    got = Counter((r.rule, r.key[1], r.attempt, r.status) for r in run.records)
    assert got == EXPECTED_RECORDS
    assert len({r.digest for r in run.records}) == len(run.records)
    failed = next(r for r in run.records if r.status == "failed")
    assert failed.internal["exit_code"] != 0


def test_a_run_whose_retry_succeeded_is_marked_succeeded(run: Run) -> None:
    assert run.meta["status"] == "succeeded"


def test_group_members_get_one_record_each(run: Run) -> None:
    g1, g2 = run.one("g1"), run.one("g2")
    assert g1.digest != g2.digest
    assert g2.parent_envelopes == {g1.digest}


def test_subjects_are_the_outputs_with_their_sha256(run: Run) -> None:
    for record in run.records:
        if record.status != "succeeded" or record.rule in ("all", "process_part"):
            continue
        assert sorted(record.subjects) == OUTPUTS[record.rule], record.rule
        for name, sha in record.subjects.items():
            assert sha == sha256_of(run.workdir / name), f"{record.rule}: {name}"
    for part in ("p00", "p01"):
        record = run.one("process_part", part=part)
        name = f"processed/{part}.txt"
        assert record.subjects == {name: hashlib.sha256(TEMP_CONTENT[name].encode()).hexdigest()}
        assert record.statement["subject"][0]["annotations"]["pox.temp"] is True
        assert not (run.workdir / name).exists()


def test_directory_output_is_hashed_as_a_manifest(run: Run) -> None:
    split = run.one("split")
    (subject,) = split.statement["subject"]
    assert subject["annotations"]["pox.directory"] is True
    parts = run.workdir / "parts"
    assert {p.name for p in parts.glob("*.txt")} == {"p00.txt", "p01.txt"}
    assert subject["digest"]["sha256"] == sha256_of(parts)


def test_action_less_target_rule_records_its_log(run: Run) -> None:
    record = run.one("all")
    (name,) = record.subjects
    assert name.startswith(f".pox/runs/{run.bundle.name}/logs/")
    assert record.subjects[name] == sha256_of(run.workdir / name)


def test_inputs_carry_digests_and_link_to_their_producers(run: Run) -> None:
    raw_sha = sha256_of(run.workdir / "data" / "raw.txt")
    producers = {name: r for r in run.records if r.status == "succeeded" for name in r.subjects}
    for record in run.records:
        parents = set()
        for name, dep in record.inputs.items():
            annotations = dep["annotations"]
            if name == "data/raw.txt":
                assert annotations["pox.origin"] == "source"
                assert dep["digest"]["sha256"] == raw_sha
                continue
            producer = producers.get(name) or producers[name.split("/")[0]]  # file in parts/
            assert annotations["pox.origin"] == "job", f"{record.rule}: {name}"
            assert annotations["pox.producer"]["envelope"] == producer.digest
            assert annotations["pox.producer"]["run_id"] == run.bundle.name
            if name in producer.subjects:
                assert dep["digest"]["sha256"] == producer.subjects[name]
            else:
                assert dep["digest"]["sha256"] == sha256_of(run.workdir / name)
            parents.add(producer.digest)
        assert record.parent_envelopes == parents, record.rule
    assert set(run.one("aggregate").inputs) == set(TEMP_CONTENT)
    assert set(run.one("process_part", part="p00").inputs) == {"parts/p00.txt"}
    assert run.one("process_part", part="p00").parent_envelopes == {run.one("split").digest}


def test_code_entries_name_what_ran(run: Run) -> None:
    (command,) = run.one("upper").dependencies("code")
    text = "tr a-z A-Z < data/raw.txt > shell.txt; echo stray > stray.txt"
    assert command["name"] == "pox:shell-command"
    assert command["annotations"]["command"] == text
    assert command["digest"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()

    prepared, script = run.one("count").dependencies("code")
    assert prepared["name"] == "pox:prepared-script/count"  # tests/plugin/test_prepared_script.py
    assert script["name"] == "scripts/count.py"
    assert script["digest"]["sha256"] == sha256_of(run.workdir / "scripts" / "count.py")

    (block,) = run.one("reverse").dependencies("code")
    assert block["name"] == "pox:run-block/reverse"
    assert block["annotations"]["snakefile"] == "Snakefile"

    commands = {
        r.attempt: r.dependencies("code")[0]["annotations"]["command"]
        for r in run.records
        if r.rule == "flaky"
    }
    assert commands == {
        1: "test 1 -gt 1 && echo attempt 1 > retried.txt",
        2: "test 2 -gt 1 && echo attempt 2 > retried.txt",
    }

    snakefile_sha = sha256_of(run.workdir / "Snakefile")
    for record in run.records:
        sources = {d["name"]: d["digest"]["sha256"] for d in record.dependencies("workflow-source")}
        assert sources["Snakefile"] == snakefile_sha, record.rule
    recorded = {s["path"]: s["sha256"] for s in run.meta["workflow_sources"]}
    assert recorded == {
        "Snakefile": snakefile_sha,
        "scripts/count.py": sha256_of(run.workdir / "scripts" / "count.py"),
    }


def test_environment_entries_name_the_image(run: Run) -> None:
    image = host_environment().digest()
    for record in run.records:
        env = {d["name"]: d for d in record.dependencies("environment")}
        assert env["pox:environment/image"]["digest"]["sha256"] == image.removeprefix("sha256:")
        assert env["pox:environment/image"]["annotations"]["backend"] == "sim"
        builder = record.statement["predicate"]["runDetails"]["builder"]["id"]
        assert builder.startswith("https://pox.dev/backends/sim@sha256:")


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def test_evidence_binds_the_key_that_signed(run: Run) -> None:
    (session,) = run.meta["sessions"]
    public = bytes.fromhex(session["public_key"])
    task_ids = set()
    for record in run.records:
        (signature,) = record.envelope["signatures"]
        assert signature["keyid"] == "sha256:" + hashlib.sha256(public).hexdigest()
        payload = base64.b64decode(record.envelope["payload"])
        Ed25519PublicKey.from_public_bytes(public).verify(
            base64.b64decode(signature["sig"]), pae(record.envelope["payloadType"], payload)
        )
        evidence, binding = record.evidence["evidence"], record.evidence["binding"]
        assert evidence["type"] == "sim-report"
        report = json.loads(base64.b64decode(evidence["value"]))
        assert report["debug"] is True
        assert report["report_data"] == hashlib.sha512(rfc8785.dumps(binding)).hexdigest()
        assert binding["public_keys"] == [session["public_key"]]
        assert binding["image_digest"] == host_environment().digest()
        task_ids.add(binding["task_id"])
    assert len(task_ids) == len(run.records), "every attempt is a task of its own"


def test_every_job_ran_isolated(run: Run) -> None:
    for record in run.records:
        assert record.internal["isolated"] is True, record.rule
        assert "bubblewrap" in record.internal["isolation"]
    assert run.meta["sessions"][0]["isolated"] is True


def test_undeclared_writes_are_discarded_and_listed(run: Run) -> None:
    assert "wrote stray.txt" in run.one("upper").internal["discarded_writes"]
    assert not (run.workdir / "stray.txt").exists()


def test_a_job_cannot_modify_its_input(run: Run) -> None:
    assert (run.workdir / "data" / "raw.txt").read_text() == RAW
    # the job saw its own private change, which was then thrown away
    assert (run.workdir / "tamper.txt").read_text() == RAW + "x\n"
    assert "wrote data/raw.txt" in run.one("tamper").internal["discarded_writes"]


def test_the_run_verifies(run: Run) -> None:
    result = pox("verify", "--allow-simulated", cwd=run.workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 recorded attempts failed" in result.stdout


# --- a job that fails for good ----------------------------------------------------------------

FAILING_SNAKEFILE = """\
rule all:
    input: "never.txt"

rule ok:
    output: "ok.txt"
    shell: "echo ok > {output}"

rule doomed:
    input: "ok.txt"
    output: "never.txt"
    shell: "echo partial > {output}; echo doomed >&2; exit 3"
"""


def test_a_job_that_fails_for_good_is_recorded_and_the_log_stays_valid(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(FAILING_SNAKEFILE)
    result = run_snakemake(tmp_path, expect_ok=False)
    assert result.returncode != 0
    bundle = only_bundle(tmp_path)
    records = read_records(bundle)
    assert [(r.rule, r.attempt, r.status) for r in records] == [
        ("ok", 1, "succeeded"),
        ("doomed", 1, "failed"),
    ]
    doomed = records[1]
    assert doomed.internal["exit_code"] == 3
    assert doomed.parent_envelopes == {records[0].digest}
    assert run_json(bundle)["status"] == "failed"
    assert not (tmp_path / "never.txt").exists()

    verify = pox("verify", "--allow-simulated", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "1 recorded attempts failed (their records are valid)" in verify.stdout
    assert "failed_attempts=1" in verify.stdout


# --- no isolation ---------------------------------------------------------------------------


def test_no_isolation_is_recorded_and_verify_warns(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "echo a > {output}"\n'
    )
    run_snakemake(tmp_path, "--pox-no-isolation")
    bundle = only_bundle(tmp_path)
    (record,) = read_records(bundle)
    assert record.internal["isolated"] is False
    assert record.internal["isolation"].startswith("none")
    assert run_json(bundle)["sessions"][0]["isolated"] is False

    verify = pox("verify", "--allow-simulated", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "WARNING isolation" in verify.stdout
    assert "1 jobs ran WITHOUT isolation" in verify.stdout
