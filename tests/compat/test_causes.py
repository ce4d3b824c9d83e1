"""Each cause found in Snakemake's own suite, reduced to a small workflow run under pox.

Every test here failed before its fix (issue 9, section 2): pipes and services crashed the run,
`workdir:` was applied twice, the plain-shell fast path formatted commands with other names
than Snakemake's `shell()`, passed long commands as one argument, skipped the output cache and
handed no resources over, sources outside the working directory were left out of the record,
and error messages ran the job log's path into the next sentence.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from poxrun import only_bundle, read_records, run_json, run_snakemake, snakemake_env

pytestmark = pytest.mark.integration

CACHE = ("--cache", "token")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_pipe_and_service_outputs_run(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Snakefile": """\
rule all:
    input: "piped.txt", "served.txt"

rule produce:
    output: pipe("numbers.pipe")
    shell: "seq 1 3 > {output}"

rule consume:
    input: "numbers.pipe"
    output: "piped.txt"
    shell: "cat {input} > {output}"

rule serve:
    output: service("random.socket")
    shell: "ln -s /dev/urandom {output}; sleep 600"

rule use_service:
    input: "random.socket"
    output: "served.txt"
    shell: "head -c 8 {input} | wc -c > {output}"
"""
        },
    )
    run_snakemake(tmp_path)
    assert (tmp_path / "piped.txt").read_text() == "1\n2\n3\n"
    assert (tmp_path / "served.txt").read_text().strip() == "8"
    rules = {r.rule for r in read_records(only_bundle(tmp_path))}
    assert {"produce", "consume", "serve", "use_service"} <= rules


def test_workdir_directive_is_applied_once(tmp_path: Path) -> None:
    # Run from the parent with `-s sub/Snakefile`; `workdir: "sub"` moves the run into sub/.
    _write(
        tmp_path,
        {
            "sub/Snakefile": """\
workdir: "sub"

rule all:
    input: "run.txt", "script.txt"

rule by_run:
    output: "run.txt"
    run:
        import os
        with open(output[0], "w") as out:
            out.write(os.getcwd())

rule by_script:
    output: "script.txt"
    script: "scripts/where.py"
""",
            "sub/scripts/where.py": """\
import os
with open(snakemake.output[0], "w") as out:
    out.write(os.getcwd())
""",
        },
    )
    run_snakemake(tmp_path, "-s", "sub/Snakefile")
    sub = tmp_path / "sub"
    assert (sub / "run.txt").read_text() == str(sub)
    assert (sub / "script.txt").read_text() == str(sub)
    assert not (sub / "sub").exists()


def test_shell_sees_snakefile_and_module_globals(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Snakefile": """\
name = "from-the-snakefile"

module greeter:
    snakefile: "greeter.smk"

use rule * from greeter as greeter_*

rule all:
    input: "name.txt", "greeting.txt"
    default_target: True

rule named:
    output: "name.txt"
    shell: "echo {name} {rule} > {output}"
""",
            # In a module, `output` at parse time is a deferred proxy: an f-string `shell:` only
            # means something when the rule's function evaluates it again, as the job runs.
            "greeter.smk": """\
rule greet:
    output: txt="greeting.txt"
    shell: f"echo hello-from-the-module > {output.txt}"
""",
        },
    )
    run_snakemake(tmp_path)
    assert (tmp_path / "name.txt").read_text() == "from-the-snakefile named\n"
    assert (tmp_path / "greeting.txt").read_text() == "hello-from-the-module\n"
    # The statement records the command that ran, not Snakemake's display text.
    commands = [
        dep["annotations"]["command"]
        for r in read_records(only_bundle(tmp_path))
        if r.rule == "named"
        for dep in r.dependencies("code")
        if "command" in dep.get("annotations", {})
    ]
    assert commands == ["echo from-the-snakefile named > name.txt"]


def test_shell_command_too_long_for_one_argument_runs_from_a_script(tmp_path: Path) -> None:
    padding = "x" * (200 * 1024)  # over Linux's 128 KiB limit for one argument
    _write(
        tmp_path,
        {
            "Snakefile": f"""\
rule long:
    output: "long.txt"
    shell: "echo ran > {{output}} # {padding}"
"""
        },
    )
    run_snakemake(tmp_path)
    assert (tmp_path / "long.txt").read_text() == "ran\n"
    assert not list((tmp_path / ".snakemake" / "pox-shell").glob("*.sh"))


def test_output_cache_is_filled_and_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    snakefile = """\
rule all:
    input: "token.txt"

rule token:
    output: "token.txt"
    cache: True
    shell: "cat /proc/sys/kernel/random/uuid > {output}"
"""
    first, second = tmp_path / "first", tmp_path / "second"
    for workdir in (first, second):
        _write(workdir, {"Snakefile": snakefile})
        env = dict(snakemake_env(workdir), SNAKEMAKE_OUTPUT_CACHE=str(cache))
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "1", *CACHE],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert list(cache.iterdir()), "the first run stores its output in the cache"
    assert (second / "token.txt").read_text() == (first / "token.txt").read_text()


def test_handover_rule_receives_every_resource(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Snakefile": """\
rule handed:
    output: "mem.txt"
    handover: True
    run:
        with open(output[0], "w") as out:
            out.write(str(resources.mem_mb))
"""
        },
    )
    run_snakemake(tmp_path, "--resources", "mem_mb=20")
    assert (tmp_path / "mem.txt").read_text() == "20"


def test_sources_outside_the_workdir_are_recorded(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    _write(
        tmp_path,
        {
            "work/Snakefile": 'rule all:\n    input: "hello.txt"\n\n'
            'include: "../shared/rules.smk"\n',
            "shared/rules.smk": 'rule hello:\n    output: "hello.txt"\n'
            '    shell: "echo hi > {output}"\n',
        },
    )
    run_snakemake(workdir)
    outside = (tmp_path / "shared" / "rules.smk").resolve()
    sources = {s["path"]: s["sha256"] for s in run_json(only_bundle(workdir))["workflow_sources"]}
    assert sources == {
        "Snakefile": hashlib.sha256((workdir / "Snakefile").read_bytes()).hexdigest(),
        f"external:{outside}": hashlib.sha256(outside.read_bytes()).hexdigest(),
    }


def test_error_message_names_an_existing_job_log(tmp_path: Path) -> None:
    _write(tmp_path, {"Snakefile": 'rule fail:\n    output: "x"\n    shell: "exit 3"\n'})
    result = run_snakemake(tmp_path, expect_ok=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    logs = re.findall(r"job log: (\S+)", text)
    assert logs, text[-3000:]
    assert all(Path(p).is_file() for p in logs), logs
    assert "/./" not in text


def test_envvars_reach_the_job(tmp_path: Path) -> None:
    # A secret-looking name is dropped from a job's environment unless the rule declares it.
    _write(
        tmp_path,
        {
            "Snakefile": """\
envvars: "POX_COMPAT_API_TOKEN"

rule token:
    output: "token.txt"
    shell: "echo $POX_COMPAT_API_TOKEN > {output}"
"""
        },
    )
    os.environ["POX_COMPAT_API_TOKEN"] = "s3cr3t"
    try:
        run_snakemake(tmp_path)
    finally:
        del os.environ["POX_COMPAT_API_TOKEN"]
    assert (tmp_path / "token.txt").read_text() == "s3cr3t\n"


def test_snakefile_outside_the_workdir_is_readable(tmp_path: Path) -> None:
    # `workdir:` moves the run below the Snakefile's directory; a spawned job re-reads it.
    _write(
        tmp_path,
        {
            "Snakefile": """\
workdir: "wd"

rule by_run:
    output: "run.txt"
    run:
        with open(output[0], "w") as out:
            out.write("ran")
"""
        },
    )
    (tmp_path / "wd").mkdir()
    run_snakemake(tmp_path)
    assert (tmp_path / "wd" / "run.txt").read_text() == "ran"


def test_touch_outputs_are_recorded_not_missing(tmp_path: Path) -> None:
    # Snakemake creates a touch() output itself once the job is done; the merged status rule
    # (an attempt with a declared output missing is failed) failed every such job.
    _write(
        tmp_path,
        {
            "Snakefile": """\
rule all:
    input: "flags/a.done", "b.done"

rule flag:
    output: touch("flags/{name}.done")
    shell: "exit 0"

rule flag_kept:
    output: touch("b.done")
    shell: "echo kept > {output}"
"""
        },
    )
    run_snakemake(tmp_path)
    assert (tmp_path / "flags" / "a.done").read_bytes() == b""
    assert (tmp_path / "b.done").read_text() == "kept\n"
    records = {r.rule: r for r in read_records(only_bundle(tmp_path))}
    assert records["flag"].status == "succeeded"
    empty = hashlib.sha256(b"").hexdigest()
    assert records["flag"].subjects == {"flags/a.done": empty}
