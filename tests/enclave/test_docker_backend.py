"""The `docker` backend against a real Docker engine: isolation, identity and evidence.

Most tests run plain shell commands as jobs (no Snakemake) through `DockerRuntime.run`, in the
`pox/python` enclave image, and check what the job could and could not do, what each attempt's
outcome says it ran in, and that engine failures come back as errors naming what failed. Two run
real Snakemake workflows whose concurrent jobs share one output directory, and check every
statement names the image. Unit tests at the end need no engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from docker_images import images, require_docker

from pox_executor.enclave import engine
from pox_executor.enclave.backends import BackendOptions, backend_names, create_runtime
from pox_executor.enclave.docker import (
    CONTAINER_SOURCE_CACHE,
    DockerRuntime,
    container_command,
    image_reference,
)
from pox_executor.enclave.engine import JOB_UID, ContainerConfig
from pox_executor.enclave.evidence import REPORT_DATA_SIZE, parse_sim_report
from pox_executor.enclave.runtime import JobSpec, OutputSpec, RunOutcome
from pox_executor.errors import EnclaveError
from pox_executor.provenance.records import JobRecord, read_entries


@pytest.fixture(scope="module")
def python_image() -> str:
    return images("python")["python"].measurement


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    (wd / "data" / "in.txt").write_text("input\n")
    (wd / ".pox").mkdir()
    (wd / ".pox" / "secret").write_text("run keys live here\n")
    return wd


def _run(
    runtime: DockerRuntime,
    workdir: Path,
    command: str,
    outputs: tuple[str, ...] = (),
    **extra: object,
) -> tuple[RunOutcome, str]:
    spec = JobSpec(
        invocation_id=f"t{abs(hash((command, str(workdir)))) % 10**10}",
        command=command,
        workdir=workdir,
        outputs=tuple(OutputSpec(p) for p in outputs),
        log_path=workdir / ".pox" / "logs" / "job.log",
        container=str(extra.pop("container", "pox/python")),
        **extra,  # type: ignore[arg-type]
    )
    outcome = runtime.run(spec, threading.Event())
    return outcome, _job_output(spec.log_path.read_text())


def _job_output(log: str) -> str:
    """What the job printed: the log without the backend's header line (which has the command)."""
    header, _, rest = log.partition("\n")
    assert header.startswith("PoX docker backend: image "), header
    return rest


@pytest.fixture
def runtime(workdir: Path, python_image: str) -> DockerRuntime:
    rt = DockerRuntime()
    rt.prepare(workdir)
    return rt


@pytest.mark.integration
def test_job_runs_as_non_root_and_only_declared_outputs_come_back(
    runtime: DockerRuntime, workdir: Path
) -> None:
    outcome, log = _run(
        runtime,
        workdir,
        "mkdir -p out && id -u > out/uid.txt && echo stray > stray.txt && echo x > out/extra.txt",
        outputs=("out/uid.txt",),
    )
    assert outcome.exit_code == 0, log
    assert (workdir / "out" / "uid.txt").read_text().strip() == str(JOB_UID)
    assert not (workdir / "stray.txt").exists()
    assert not (workdir / "out" / "extra.txt").exists()
    assert "wrote stray.txt" in outcome.discarded_writes
    assert "wrote out/extra.txt" in outcome.discarded_writes
    # committed outputs belong to the working directory's owner, as if the host wrote them
    assert (workdir / "out" / "uid.txt").stat().st_uid == workdir.stat().st_uid
    assert outcome.isolated and "uid 65532" in outcome.isolation


@pytest.mark.integration
def test_inputs_are_read_only_and_deletions_are_discarded(
    runtime: DockerRuntime, workdir: Path
) -> None:
    outcome, log = _run(
        runtime,
        workdir,
        "if echo tampered >> data/in.txt; then echo WROTE; fi; rm -f data/in.txt; "
        "test ! -e data/in.txt && echo gone-inside",
    )
    assert outcome.exit_code == 0, log
    assert "WROTE" not in log and "Permission denied" in log
    assert "gone-inside" in log
    assert (workdir / "data" / "in.txt").read_text() == "input\n"
    assert "deleted data/in.txt" in outcome.discarded_writes


@pytest.mark.integration
def test_no_network_no_capabilities_no_new_privileges_read_only_root(
    runtime: DockerRuntime, workdir: Path
) -> None:
    outcome, log = _run(
        runtime,
        workdir,
        "echo IF-BEGIN; ls /sys/class/net; echo IF-END; "
        "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status; "
        "touch /usr/pox-probe 2>/dev/null && echo ROOT-WRITABLE; "
        "cat .pox/secret 2>/dev/null && echo SECRET-VISIBLE; "
        "python3 -c \"import socket; socket.create_connection(('10.255.255.1', 80), timeout=2)\" "
        "2>/dev/null && echo CONNECTED; echo done",
    )
    assert outcome.exit_code == 0, log
    assert "CapEff:\t0000000000000000" in log
    assert "CapPrm:\t0000000000000000" in log
    assert "CapBnd:\t0000000000000000" in log
    assert "NoNewPrivs:\t1" in log
    interfaces = log.split("IF-BEGIN\n")[1].split("IF-END\n")[0].split()
    assert interfaces == ["lo"]
    for marker in ("ROOT-WRITABLE", "SECRET-VISIBLE", "CONNECTED"):
        assert marker not in log
    assert log.rstrip().endswith("done")


@pytest.mark.integration
def test_readable_outside_paths_are_visible_read_only(
    runtime: DockerRuntime, workdir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere" / "reference.txt"
    outside.parent.mkdir()
    outside.write_text("reference\n")
    outcome, log = _run(
        runtime,
        workdir,
        f"cat {outside}; echo x >> {outside} 2>/dev/null && echo WROTE; echo done",
        readable=(str(outside),),
    )
    assert outcome.exit_code == 0, log
    assert "reference" in log and "WROTE" not in log and "done" in log
    assert outside.read_text() == "reference\n"


@pytest.mark.integration
def test_the_job_sees_no_host_secrets_unless_the_rule_passes_them(
    runtime: DockerRuntime, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POX_SIGNING_PASSPHRASE", "host-passphrase")
    monkeypatch.setenv("REGISTRY_TOKEN", "host-token")
    monkeypatch.setenv("DECLARED_TOKEN", "declared-token")
    monkeypatch.setenv("ORDINARY_SETTING", "ordinary")
    monkeypatch.setenv("PYTHONPATH", "/host/only/site-packages")
    outcome, log = _run(
        runtime,
        workdir,
        "env | sort; python3 -c 'import tempfile; print(\"tempdir=\" + tempfile.gettempdir())'",
        env_passthrough=("DECLARED_TOKEN",),
    )
    assert outcome.exit_code == 0, log
    lines = set(log.splitlines())
    assert "DECLARED_TOKEN=declared-token" in lines
    assert "ORDINARY_SETTING=ordinary" in lines
    for leaked in ("POX_SIGNING_PASSPHRASE", "REGISTRY_TOKEN", "PYTHONPATH"):
        assert not any(line.startswith(f"{leaked}=") for line in lines), leaked
    assert "host-passphrase" not in log and "host-token" not in log
    assert {"HOME=/tmp", "TMPDIR=/tmp", "tempdir=/tmp"} <= lines
    # the statement records the names that passed, never the secrets or the host's own places
    assert {"DECLARED_TOKEN", "ORDINARY_SETTING"} <= set(outcome.environment_names)
    for dropped in ("POX_SIGNING_PASSPHRASE", "REGISTRY_TOKEN", "PYTHONPATH", "PATH", "HOME"):
        assert dropped not in outcome.environment_names


@pytest.mark.integration
@pytest.mark.parametrize(
    "target", ["/etc/hostname", ".pox/secret", "../outside.txt"], ids=["host", "pox", "parent"]
)
def test_a_symlink_output_leaving_the_working_directory_fails_the_job(
    runtime: DockerRuntime, workdir: Path, target: str
) -> None:
    outcome, log = _run(runtime, workdir, f"ln -s {target} link.txt", ("link.txt",))
    assert outcome.exit_code != 0, log
    assert not os.path.lexists(workdir / "link.txt")
    assert "PoX: output 'link.txt' was not committed" in log
    assert "outside the working directory" in log


@pytest.mark.integration
def test_a_symlink_output_inside_the_working_directory_is_committed(
    runtime: DockerRuntime, workdir: Path
) -> None:
    outcome, log = _run(runtime, workdir, "ln -s data/in.txt link.txt", ("link.txt",))
    assert outcome.exit_code == 0, log
    assert os.readlink(workdir / "link.txt") == "data/in.txt"


@pytest.mark.integration
def test_network_only_when_the_rule_asks(runtime: DockerRuntime, workdir: Path) -> None:
    outcome, log = _run(runtime, workdir, "ls /sys/class/net", network=True)
    assert outcome.exit_code == 0, log
    assert "eth0" in log


@pytest.mark.integration
def test_cpu_and_memory_limits_come_from_threads_and_mem_mb(
    runtime: DockerRuntime, workdir: Path
) -> None:
    outcome, log = _run(
        runtime,
        workdir,
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; true",
        threads=1,
        mem_mb=300,
    )
    assert outcome.exit_code == 0, log
    assert str(300 * 1024 * 1024) in log
    assert "100000" in log  # one CPU: quota 100000 per 100000 us period


@pytest.mark.integration
def test_each_outcome_carries_the_identity_of_the_image_it_ran_in(
    runtime: DockerRuntime, workdir: Path, python_image: str
) -> None:
    session = runtime.measurement()
    outcome, log = _run(runtime, workdir, "true")
    assert outcome.exit_code == 0, log
    assert outcome.measurement == python_image
    assert outcome.image_digest == f"sha256:{python_image}"
    assert outcome.builder_id == f"https://pox.dev/backends/docker@sha256:{python_image}"
    assert "image pox/python" in outcome.isolation
    evidence = runtime.evidence(b"\x07" * REPORT_DATA_SIZE, measurement=outcome.measurement)
    report = parse_sim_report(evidence)
    assert evidence.type == "sim-report" and report.debug
    assert report.measurement == python_image
    assert report.report_data == b"\x07" * REPORT_DATA_SIZE
    # the runtime-wide identity (the session record's) is the backend's own, before and after
    assert runtime.measurement() == session != python_image
    assert runtime.builder_id().endswith(f"@sha256:{session}")
    assert parse_sim_report(runtime.evidence(b"\x00" * REPORT_DATA_SIZE)).measurement == session


@pytest.mark.integration
def test_cancel_all_kills_the_running_container(runtime: DockerRuntime, workdir: Path) -> None:
    outcomes: list[RunOutcome] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(_run(runtime, workdir, "echo started; sleep 120")[0])
    )
    thread.start()
    log = workdir / ".pox" / "logs" / "job.log"
    for _ in range(300):  # the job's own output (not the header naming the command) in the log
        if log.exists() and "\nstarted\n" in log.read_text():
            break
        threading.Event().wait(0.1)
    runtime.cancel_all()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert outcomes[0].exit_code != 0
    assert not [c for c in engine.client().containers(all=True) if "pox-job-" in str(c["Names"])]


@pytest.mark.integration
def test_engine_errors_name_the_image(python_image: str) -> None:
    assert engine.inspect_image("pox/does-not-exist") is None
    config = ContainerConfig(
        name="pox-test-no-such-image",
        image="sha256:" + "0" * 64,
        command=("true",),
        user="65532:65532",
        working_dir="/tmp",
    )
    with pytest.raises(EnclaveError, match=r"creating container pox-test-no-such-image from image"):
        engine.create_container(config)


@pytest.mark.integration
def test_missing_image_fails_the_job_with_a_hint(runtime: DockerRuntime, workdir: Path) -> None:
    spec = JobSpec(
        invocation_id="missing",
        command="true",
        workdir=workdir,
        outputs=(),
        log_path=workdir / ".pox" / "logs" / "m.log",
        container="pox/does-not-exist",
    )
    outcome = runtime.run(spec, threading.Event())
    log = spec.log_path.read_text()
    assert outcome.exit_code == 125
    assert "pox images build does-not-exist" in log


@pytest.mark.integration
def test_rule_without_image_uses_the_default(workdir: Path, python_image: str) -> None:
    rt = create_runtime("docker", BackendOptions(default_image="docker://pox/python"))
    rt.prepare(workdir)
    spec = JobSpec(
        invocation_id="default-image",
        command="true",
        workdir=workdir,
        outputs=(),
        log_path=workdir / ".pox" / "logs" / "d.log",
    )
    outcome = rt.run(spec, threading.Event())
    assert outcome.exit_code == 0
    assert outcome.measurement == python_image
    bare = DockerRuntime()
    bare.prepare(workdir)
    outcome = bare.run(spec, threading.Event())
    assert outcome.exit_code == 125
    assert "--pox-default-image" in spec.log_path.read_text()


@pytest.mark.integration
def test_prepare_needs_an_engine_at_docker_host(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DOCKER_HOST is honoured: an address where no engine listens is an engine that is down."""
    require_docker()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{workdir}/no-engine.sock")
    with pytest.raises(EnclaveError, match="running Docker engine") as caught:
        DockerRuntime().prepare(workdir)
    assert "no-engine.sock" in str(caught.value)


@pytest.mark.integration
def test_a_job_writes_into_an_output_directory_another_job_commits_while_it_runs(
    runtime: DockerRuntime, workdir: Path
) -> None:
    """`out/` appears in the real directory (root-owned) after the slow job's overlay is mounted."""
    slow: list[RunOutcome] = []
    thread = threading.Thread(
        target=lambda: slow.append(
            _run(runtime, workdir, "sleep 4; mkdir -p out; echo b > out/b.txt", ("out/b.txt",))[0]
        )
    )
    thread.start()
    # the slow job's container starts within a second (its log header is written just before)
    log = workdir / ".pox" / "logs" / "job.log"
    for _ in range(100):
        if log.exists() and log.read_text().startswith("PoX docker backend"):
            break
        threading.Event().wait(0.1)
    fast = DockerRuntime()
    fast.prepare(workdir)
    spec = JobSpec(
        invocation_id="fast",
        command="mkdir -p out && echo a > out/a.txt",
        workdir=workdir,
        outputs=(OutputSpec("out/a.txt"),),
        log_path=workdir / ".pox" / "logs" / "fast.log",
        container="pox/python",
    )
    assert fast.run(spec, threading.Event()).exit_code == 0, spec.log_path.read_text()
    assert (workdir / "out").stat().st_uid == workdir.stat().st_uid
    thread.join()
    assert slow[0].exit_code == 0, log.read_text()
    assert (workdir / "out" / "a.txt").read_text() == "a\n"
    assert (workdir / "out" / "b.txt").read_text() == "b\n"


WILDCARD_SNAKEFILE = """
container: "pox/python"

rule all:
    input: expand("out/{i}.txt", i=range(6))

rule make:
    output: "out/{i}.txt"
    shell: "echo job {wildcards.i} > {output}"
"""


@pytest.mark.integration
@pytest.mark.parametrize("user_made_out", [False, True], ids=["fresh", "user-made-out"])
def test_concurrent_wildcard_jobs_share_one_output_directory_through_snakemake(
    tmp_path: Path, python_image: str, user_made_out: bool
) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(WILDCARD_SNAKEFILE)
    if user_made_out:
        (workdir / "out").mkdir(mode=0o755)
        os.chown(workdir / "out", 1000, 1000)  # someone else's directory, not the job user's
    _run_pox_docker(workdir, cores=3)
    for i in range(6):
        assert (workdir / "out" / f"{i}.txt").read_text() == f"job {i}\n"
    made = [job for job in _jobs(workdir) if job.rule == "make"]
    assert len(made) == 6
    for job in made:
        # the attempt's own image identity: builder id, environment entry, binding, evidence
        assert job.builder_id.endswith(f"@sha256:{python_image}")
        (image,) = [d for d in job.dependencies if d.name == "pox:environment/image"]
        assert image.sha256 == python_image
        assert job.binding.image_digest == f"sha256:{python_image}"
        assert parse_sim_report(job.evidence).measurement == python_image


def _run_pox_docker(workdir: Path, *, cores: int) -> None:
    """Snakemake with `--executor pox --pox-backend docker` in `workdir`; it must succeed."""
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            *("--executor", "pox", "--pox-backend", "docker", "--pox-chain", "none"),
            *("--cores", str(cores)),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]


def _jobs(workdir: Path) -> list[JobRecord]:
    (bundle,) = list((workdir / ".pox" / "runs").iterdir())
    entries = read_entries(bundle / "attestations.intoto.jsonl")
    return [e for e in entries if isinstance(e, JobRecord)]


# -- units: no engine ---------------------------------------------------------------------------


def test_docker_is_a_registered_backend() -> None:
    assert "docker" in backend_names()


def test_image_reference_accepts_docker_names_only() -> None:
    assert image_reference("docker://pox/python") == "pox/python"
    assert image_reference("pox/r:latest") == "pox/r:latest"
    for bad in ("shub://x/y", "library://a/b", "image.sif", ""):
        with pytest.raises(EnclaveError):
            image_reference(bad)


def test_container_command_uses_the_image_interpreter_and_a_private_source_cache() -> None:
    import sys

    host = (
        f"{sys.executable} -m snakemake --snakefile '/w/Snakefile' --runtime-source-cache-path "
        "'/root/.cache/snakemake/x/tmpab12' --mode 'remote'"
    )
    out = container_command(host)
    assert out.startswith("python3 -m snakemake ")
    assert f"--runtime-source-cache-path {CONTAINER_SOURCE_CACHE} " in out
    assert "/root/.cache" not in out
    assert sys.executable not in out  # the host's interpreter path never reaches the image


def test_container_command_drops_the_host_storage_plugin_settings() -> None:
    # Snakemake passes every installed storage plugin's settings; the image has no such plugin.
    host = (
        "python3 -m snakemake --local-storage-prefix base64//LnNu --storage-http-allow-redirects "
        "True --storage-s3-endpoint-url 'http://a b' --storage-fs-tags a:1 b:2 --default-resources "
        "base64//dG1w --shared-fs-usage input-output storage-local-copies --mode 'remote'"
    )
    assert container_command(host) == (
        "python3 -m snakemake --local-storage-prefix base64//LnNu --default-resources "
        "base64//dG1w --shared-fs-usage input-output storage-local-copies --mode 'remote'"
    )


def test_the_backend_needs_the_engine_module_not_the_image_builder() -> None:
    probe = (
        "import sys, pox_executor.enclave.docker; "
        "print(sorted(m for m in sys.modules if m.startswith('pox_executor.enclave.images')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


LINKED_MODULE_SNAKEFILE = """
container: "pox/python"
include: "lib/steps.smk"

rule all:
    input: "out/done.txt"
"""

LINKED_STEPS = """
rule done:
    output: "out/done.txt"
    run:
        with open(output[0], "w") as fh:
            fh.write("ran from a linked module\\n")
"""


@pytest.mark.integration
def test_a_module_folder_linked_from_outside_the_working_directory_is_readable(
    tmp_path: Path, python_image: str
) -> None:
    # a lab links a shared rules/ folder into its workflow; a `run:` job's Snakemake inside the
    # container parses the Snakefile and must find the include behind the symlink
    shared = tmp_path / "shared-rules"
    shared.mkdir()
    (shared / "steps.smk").write_text(LINKED_STEPS)
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(LINKED_MODULE_SNAKEFILE)
    (workdir / "lib").symlink_to("../shared-rules")
    _run_pox_docker(workdir, cores=1)
    assert (workdir / "out" / "done.txt").read_text() == "ran from a linked module\n"
    (job,) = [j for j in _jobs(workdir) if j.rule == "done"]
    assert any(d.name.endswith("lib/steps.smk") for d in job.dependencies), job.dependencies
