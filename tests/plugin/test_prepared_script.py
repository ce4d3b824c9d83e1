"""A Python `script:` job runs its prepared file directly, as under the local executor.

PoX writes the file Snakemake's `script()` writes (preamble with the pickled `snakemake` object,
then the script) in the main process and the sandbox runs only the interpreter on it, instead of
a whole Snakemake process per job. The run checks that the script sees what it would see under
Snakemake (input, output, params, wildcards, config, log, threads), that the statement names the
exact file that ran (kept here with `--skip-script-cleanup` and hashed independently), that no
Snakemake process ran for it, and that what cannot be prepared (a Bash script, `--pox-spawn-all`)
still runs through Snakemake's own subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from poxrun import Record, bundles, only_bundle, read_records, run_snakemake, sha256_of

pytestmark = pytest.mark.integration

PY_SCRIPT = """\
import json, os
with open(snakemake.output[0], "w") as out:
    json.dump(
        {
            "input": list(snakemake.input),
            "named": snakemake.input.data,
            "params": snakemake.params.word,
            "wildcards": dict(snakemake.wildcards),
            "config": snakemake.config["greeting"],
            "threads": snakemake.threads,
            "rule": snakemake.rule,
            "file": os.path.basename(__file__),
        },
        out,
        sort_keys=True,
    )
with open(snakemake.log[0], "w") as log:
    log.write("logged\\n")
"""

SH_SCRIPT = """\
echo "${snakemake_input[0]} -> ${snakemake_output[0]}" > "${snakemake_output[0]}"
"""

SNAKEFILE = """\
config.setdefault("greeting", "hello")

rule all:
    input: "py/one.json", "sh.txt"

rule py:
    input: data="data.txt"
    output: "py/{name}.json"
    params: word=lambda wildcards: wildcards.name.upper()
    log: "logs/py-{name}.log"
    threads: 2
    script: "scripts/show.py"

rule sh:
    input: "data.txt"
    output: "sh.txt"
    script: "scripts/show.sh"
"""

SNAKEMAKE_BANNER = "Building DAG of jobs"


def _workflow(workdir: Path) -> None:
    (workdir / "scripts").mkdir(parents=True)
    (workdir / "scripts" / "show.py").write_text(PY_SCRIPT)
    (workdir / "scripts" / "show.sh").write_text(SH_SCRIPT)
    (workdir / "data.txt").write_text("data\n")
    (workdir / "Snakefile").write_text(SNAKEFILE)


def _job_log(workdir: Path, record: Record) -> str:
    for byproduct in record.statement["predicate"]["runDetails"]["byproducts"]:
        if byproduct["name"].endswith(".log") and ".pox/" in byproduct["name"]:
            return (workdir / byproduct["name"]).read_text()
    raise AssertionError(f"no job log named in the record of {record.rule}")


def _one(records: list[Record], rule: str) -> Record:
    (found,) = [r for r in records if r.rule == rule]
    return found


def test_python_script_runs_prepared_and_is_recorded_exactly(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    _workflow(workdir)
    run_snakemake(workdir, "--skip-script-cleanup", "--config", "greeting=bonjour")

    seen = json.loads((workdir / "py" / "one.json").read_text())
    assert seen == {
        "input": ["data.txt"],
        "named": "data.txt",
        "params": "ONE",
        "wildcards": {"name": "one"},
        "config": "bonjour",
        "threads": 2,
        "rule": "py",
        "file": "show.py",  # the preamble sets __file__ to the script, as Snakemake's does
    }
    assert (workdir / "logs" / "py-one.log").read_text() == "logged\n"
    assert (workdir / "sh.txt").read_text() == "data.txt -> sh.txt\n"

    records = read_records(only_bundle(workdir))
    py = _one(records, "py")
    code = {d["name"]: d for d in py.dependencies("code")}
    assert code["scripts/show.py"]["digest"]["sha256"] == sha256_of(workdir / "scripts/show.py")
    prepared = code["pox:prepared-script/py"]
    assert prepared["annotations"]["script"] == "scripts/show.py"
    interpreter, ran = prepared["annotations"]["command"].split(" ")
    assert Path(interpreter).name.startswith("python")
    assert ran.startswith(".snakemake/scripts/tmp") and ran.endswith(".show.py")
    kept = workdir / ran  # --skip-script-cleanup keeps it, as Snakemake does
    assert prepared["digest"]["sha256"] == sha256_of(kept)
    text = kept.read_text()
    assert "snakemake preamble start" in text and text.endswith(PY_SCRIPT)
    assert SNAKEMAKE_BANNER not in _job_log(workdir, py)

    # A Bash script is not prepared: Snakemake's own subprocess runs it.
    sh = _one(records, "sh")
    assert [d["name"] for d in sh.dependencies("code")] == ["scripts/show.sh"]
    assert SNAKEMAKE_BANNER in _job_log(workdir, sh)


def test_prepared_scripts_are_removed_and_spawn_all_still_spawns(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    _workflow(workdir)
    run_snakemake(workdir, "--pox-spawn-all", "--forcerun", "py")
    records = read_records(only_bundle(workdir))
    py = _one(records, "py")
    assert "pox:prepared-script/py" not in {d["name"] for d in py.dependencies("code")}
    assert SNAKEMAKE_BANNER in _job_log(workdir, py)

    run_snakemake(workdir, "--forcerun", "py", "--pox-new-run")
    newest = max(bundles(workdir), key=lambda b: b.name)
    py = _one(read_records(newest), "py")
    assert "pox:prepared-script/py" in {d["name"] for d in py.dependencies("code")}
    assert list((workdir / ".snakemake" / "scripts").iterdir()) == []  # removed after the job
