"""The sandbox's guarantees through real Snakemake (`--executor pox`, sim backend, bubblewrap):
plain shell jobs and a spawned `run:` job, secrets kept out, scratch and home private, an output
outside the working directory committed, a symlink output to a host file refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from poxrun import run_snakemake

pytestmark = pytest.mark.integration

PROBE = (
    "import socket, sys\\n"
    "for path in sys.argv[1:]:\\n"
    "    s = socket.socket(socket.AF_UNIX)\\n"
    "    try:\\n"
    "        s.connect(path); print('REACHED', path)\\n"
    "    except OSError as exc:\\n"
    "        print('blocked', path, exc.errno)\\n"
)

SNAKEFILE = """\
rule all:
    input: "sorted.txt", "probe.txt", "env.txt", "nested.txt", "{outside}"

rule scratch:
    output: "sorted.txt"
    shell: "printf 'b\\\\na\\\\n' | sort -T $TMPDIR > {{output}}"

rule probe:
    output: "probe.txt"
    shell:
        "python3 -c \\"{probe}\\" {socket} > {{output}}; "
        "cat ~/.config/pox/keys/signer.json >> {{output}} 2>/dev/null || true"

rule env:
    output: "env.txt"
    shell: "env > {{output}}"

rule nested:
    output: "nested.txt"
    run:
        import os, pathlib
        cache = pathlib.Path(os.path.expanduser("~/.cache/snakemake"))
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "pox-marker").write_text("job")
        pathlib.Path(output[0]).write_text(os.environ["TMPDIR"] + "\\n")

rule outside:
    output: "{outside}"
    shell: "echo outside > {{output}}"
"""


def test_a_workflow_runs_with_private_scratch_and_home_and_no_host_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    secret = home / ".config" / "pox" / "keys" / "signer.json"
    secret.parent.mkdir(parents=True)
    secret.write_text("SECRET-MATERIAL\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("POX_KEYSTORE_PASSPHRASE", "hunter2")
    monkeypatch.setenv("LAB_API_TOKEN", "t0ken")
    monkeypatch.setenv("ORDINARY_SETTING", "kept")
    host_socket = "/var/run/docker.sock" if os.path.exists("/var/run/docker.sock") else "/run/x"
    outside = tmp_path / "outside" / "out.txt"
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        SNAKEFILE.format(outside=outside, probe=PROBE, socket=host_socket)
    )
    run_snakemake(workdir)
    assert (workdir / "sorted.txt").read_text() == "a\nb\n"
    probe = (workdir / "probe.txt").read_text()
    assert "blocked" in probe and "REACHED" not in probe and "SECRET" not in probe, probe
    env = (workdir / "env.txt").read_text()
    assert "ORDINARY_SETTING=kept" in env
    assert "hunter2" not in env and "t0ken" not in env and "SNAKEMAKE_POX" not in env
    assert (workdir / "nested.txt").read_text() == "/tmp\n"
    assert outside.read_text() == "outside\n"
    assert not (home / ".cache" / "snakemake" / "pox-marker").exists(), "the job's home is private"


def test_a_symlink_output_to_a_host_file_fails_the_run(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        'rule leak:\n    output: "leak.txt"\n    shell: "ln -s /etc/hostname {output}"\n'
    )
    result = run_snakemake(workdir, expect_ok=False)
    assert result.returncode != 0
    assert not os.path.lexists(workdir / "leak.txt")
    logs = "".join(p.read_text() for p in workdir.glob(".pox/runs/*/logs/*.log"))
    assert "output 'leak.txt' was not committed" in logs, logs
