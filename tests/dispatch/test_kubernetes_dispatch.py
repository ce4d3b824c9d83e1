"""`--pox-dispatch kubernetes` end to end on the head, with each Job run locally in its place.

No cluster runs here. `LocalJobs` stands where the API server and a node would be: it checks
each Job the dispatcher creates against the API schema (the official client's models), then runs
the Job's own container command (`pox jobstep TICKET`, a real process of the installed `pox`) in
the container's working directory, and reports the Job's status as the API would (active, then
a Complete or Failed condition). Everything else is real: the ticket on the "shared volume", the
node-side signing with a fresh attested key, the HTTP collector, the run log, `pox verify`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ci_mode import missing_tool
from dispatch_nodes import dispatch_recorder
from recorded import DAG, Step, facts_of

from pox_executor.audit.verify import verify_run
from pox_executor.dispatch import kubernetes as k8s
from pox_executor.dispatch.slurm import DispatchOptions
from pox_executor.enclave.runtime import JobSpec, OutputSpec
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.recorder import RunRecorder
from pox_executor.provenance.records import JobRecord, read_entries

IMAGE = "registry.example.org/pox/jobstep@sha256:" + "cd" * 32


class LocalJobs:
    """Runs each created Job's container command as a local process; reports Job statuses."""

    def __init__(
        self, *, kill: frozenset[str] = frozenset(), stop_signal: int = signal.SIGTERM
    ) -> None:
        try:
            from kubernetes import client
        except ImportError:
            missing_tool("the Python package 'kubernetes' is not installed")
        self._api = client.ApiClient()
        self._kill = kill  # submission ids whose pod is SIGKILLed (node lost, OOM)
        self._stop_signal = stop_signal  # what a deleted Job's pod gets
        self._lock = threading.Lock()
        self.status: dict[str, dict[str, Any]] = {}
        self.manifests: dict[str, Mapping[str, Any]] = {}
        self.deleted: list[str] = []
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def create_job(self, manifest: Mapping[str, Any]) -> None:
        job = self._api.deserialize(json.dumps(manifest), "V1Job", "application/json")
        assert self._api.sanitize_for_serialization(job) == manifest  # schema-valid
        name = manifest["metadata"]["name"]
        sid = manifest["metadata"]["annotations"][k8s.ANNOTATION_SUBMISSION]
        with self._lock:
            self.manifests[name] = manifest
            self.status[name] = {"active": 1}
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        process = subprocess.Popen(
            container["command"],
            cwd=container["workingDir"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with self._lock:
            self._processes[name] = process
        if sid in self._kill:
            process.send_signal(signal.SIGKILL)
        threading.Thread(target=self._wait, args=(name, process), daemon=True).start()

    def _wait(self, name: str, process: subprocess.Popen[bytes]) -> None:
        _, stderr = process.communicate()
        code = process.returncode
        if code == 0:
            status = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        else:
            reason = f"pod exited {code}" + (f": {stderr.decode()[-200:]}" if stderr else "")
            status = {
                "failed": 1,
                "conditions": [{"type": "Failed", "status": "True", "reason": reason}],
            }
        with self._lock:
            if name not in self.deleted:  # a deleted Job is never listed again
                self.status[name] = status

    def job_states(self, run_id: str) -> dict[str, tuple[str, str]]:
        with self._lock:
            return {name: k8s.job_state(status) for name, status in self.status.items()}

    def delete_job(self, name: str) -> None:
        with self._lock:
            self.deleted.append(name)
            self.status.pop(name, None)
            process = self._processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(self._stop_signal)  # the pod is stopped

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def settings() -> k8s.KubernetesSettings:
    return k8s.KubernetesSettings(
        image=IMAGE,
        volume_claim="pox-work",
        runtime_class="kata-qemu-coco-dev",
        kbs_url="http://127.0.0.1:8080",
    )


def dispatcher(recorder: RunRecorder, cluster: LocalJobs) -> k8s.KubernetesDispatcher:
    options = DispatchOptions(
        backend="sim",
        isolate=False,
        default_image=None,
        shared_home=False,
        poll_interval_s=0.2,
        collect_grace_s=8,
    )
    return k8s.KubernetesDispatcher(recorder, options, settings(), cluster)


def spec_of(recorder: RunRecorder, step: Step) -> JobSpec:
    invocation = f"inv-{step.jobid}-{step.attempt}"
    return JobSpec(
        invocation_id=invocation,
        command=step.command,
        workdir=recorder.workdir,
        outputs=tuple(OutputSpec(o) for o in step.outputs),
        log_path=recorder.bundle.logs_dir / f"{invocation}.log",
        threads=2,
        mem_mb=500,
    )


def run(head: k8s.KubernetesDispatcher, recorder: RunRecorder, step: Step) -> str | None:
    return head.execute([facts_of(step)], spec_of(recorder, step), None)


def verify(recorder: RunRecorder, status: str) -> list[str]:
    recorder.finish(status, [])
    report = verify_run(RunBundle.load(recorder.bundle.path), allow_simulated=True)
    return [f"{f.check}: {f.message}" for f in report.errors]


def test_dag_through_jobs_run_locally_verifies(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    cluster = LocalJobs()
    head = dispatcher(recorder, cluster)
    try:
        assert run(head, recorder, DAG[0]) is None
        results: dict[int, str | None] = {}
        parallel = [
            threading.Thread(target=lambda s=s: results.update({s.jobid: run(head, recorder, s)}))
            for s in DAG[1:]
        ]
        for t in parallel:
            t.start()
        for t in parallel:
            t.join()
        assert results == {2: None, 3: None}
    finally:
        head.close()
    assert (recorder.workdir / "b.txt").read_text() == "ALPHA\n"
    assert verify(recorder, "succeeded") == []
    records = [
        e for e in read_entries(recorder.bundle.attestations_path) if isinstance(e, JobRecord)
    ]
    assert sorted(r.jobid for r in records) == [1, 2, 3]
    session_keyid = recorder.key.public_key.keyid
    for line in recorder.bundle.attestations_path.read_bytes().splitlines()[1:4]:
        assert json.loads(line)["signatures"][0]["keyid"] != session_keyid  # signed in the pod
    parents = {r.jobid: r.parents for r in records}
    first = next(r for r in records if r.jobid == 1)
    assert parents[2] == parents[3] == [first.digest]
    # every Job was a CoCo Job: runtime class, image by digest, broker in init-data
    assert len(cluster.manifests) == 3
    for job in cluster.manifests.values():
        pod = job["spec"]["template"]
        assert pod["spec"]["runtimeClassName"] == "kata-qemu-coco-dev"
        assert pod["spec"]["containers"][0]["image"] == IMAGE
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {
            "cpu": "2",
            "memory": "500Mi",
        }
        assert k8s.INITDATA_ANNOTATION in pod["metadata"]["annotations"]
    assert not list(head.tickets_dir.iterdir())  # tickets removed once collected


def test_failed_job_is_recorded_failed(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    head = dispatcher(recorder, LocalJobs())
    try:
        error = run(head, recorder, Step(1, "a", ("data.txt",), ("a.txt",), "exit 3"))
    finally:
        head.close()
    assert error is not None and "exit code 3" in error
    assert verify(recorder, "failed") == []
    (record,) = [
        e for e in read_entries(recorder.bundle.attestations_path) if isinstance(e, JobRecord)
    ]
    assert not record.succeeded and record.exit_code == 3


def test_pod_killed_without_statement_is_recorded_by_the_head_and_retried(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    first = Step(1, "a", ("data.txt",), ("a.txt",), "cat data.txt > a.txt")
    head = dispatcher(recorder, LocalJobs(kill=frozenset({"inv-1-1"})))
    try:
        error = run(head, recorder, first)
        assert error is not None
        assert "ended FAILED" in error and "without a signed statement" in error
        retry = Step(1, "a", ("data.txt",), ("a.txt",), "cat data.txt > a.txt", attempt=2)
        assert run(head, recorder, retry) is None
    finally:
        head.close()
    assert verify(recorder, "succeeded") == []
    records = [
        e for e in read_entries(recorder.bundle.attestations_path) if isinstance(e, JobRecord)
    ]
    assert [(r.attempt, r.succeeded) for r in records] == [(1, False), (2, True)]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_deleted_job_does_not_hang_the_run(tmp_path: Path, stop_signal: int) -> None:
    """A Job deleted while its pod runs (by someone, or its TTL): SIGTERM lets the pod record
    the stopped attempt, SIGKILL leaves nothing and the head records it as GONE."""
    recorder = dispatch_recorder(tmp_path / "wd")
    cluster = LocalJobs(stop_signal=stop_signal)
    head = dispatcher(recorder, cluster)
    step = Step(1, "a", ("data.txt",), ("a.txt",), "touch started && sleep 30")
    outcome: dict[str, str | None] = {}
    worker = threading.Thread(target=lambda: outcome.update(error=run(head, recorder, step)))
    worker.start()
    try:
        for _ in range(600):  # the job runs: jobstep is past its start-up and handles SIGTERM
            if (recorder.workdir / "started").exists():
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.5)  # listed at least once by the poller
        (name,) = cluster.status
        cluster.delete_job(name)
        worker.join(timeout=40)
        assert not worker.is_alive()
    finally:
        head.close()
        cluster.stop()
    (record,) = [
        e for e in read_entries(recorder.bundle.attestations_path) if isinstance(e, JobRecord)
    ]
    assert not record.succeeded
    if stop_signal == signal.SIGKILL:
        assert "ended GONE" in str(outcome["error"])
        assert "recorded by the head" in record.isolation
    else:
        assert "exit code" in str(outcome["error"])
        assert "recorded by the head" not in record.isolation  # the pod signed it


def test_cancel_deletes_the_jobs(tmp_path: Path) -> None:
    recorder = dispatch_recorder(tmp_path / "wd")
    cluster = LocalJobs()
    head = dispatcher(recorder, cluster)
    step = Step(1, "a", ("data.txt",), ("a.txt",), "touch started && sleep 30")
    worker = threading.Thread(target=lambda: run(head, recorder, step))
    worker.start()
    try:
        for _ in range(600):
            if (recorder.workdir / "started").exists():
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.5)
        head.cancel_all()
        assert cluster.deleted == list(cluster.manifests)
        worker.join(timeout=20)
        assert not worker.is_alive()
    finally:
        head.close()
        cluster.stop()


def test_settings_file_is_looked_up_in_the_workdir(tmp_path: Path) -> None:
    assert k8s.settings_path(tmp_path, {}) == tmp_path / "pox-kubernetes.toml"
    assert k8s.settings_path(tmp_path, {"POX_KUBERNETES_CONFIG": "/etc/k.toml"}) == Path(
        "/etc/k.toml"
    )


def snakemake(workdir: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "--executor", "pox", "--cores", "1"]
    return subprocess.run(
        [*command, "--pox-dispatch", "kubernetes"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.integration
def test_snakemake_with_kubernetes_dispatch_and_no_cluster_fails_clearly(tmp_path: Path) -> None:
    """The real CLI path: settings read, then the missing cluster named; no traceback."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "echo a > a.txt"\n'
    )
    (workdir / "pox-kubernetes.toml").write_text(f'image = "{IMAGE}"\nvolume_claim = "pox-work"\n')
    env = dict(
        os.environ,
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
        SNAKEMAKE_POX_CHAIN="none",
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = snakemake(workdir, env)
    assert done.returncode != 0
    assert "no Kubernetes cluster configured" in done.stderr
    assert "Traceback" not in done.stderr
    (workdir / "pox-kubernetes.toml").write_text('image = "jobstep:latest"\nvolume_claim = "w"\n')
    done = snakemake(workdir, env)
    assert done.returncode != 0
    assert "pox-kubernetes.toml: field 'image'" in done.stderr
    assert "Traceback" not in done.stderr
