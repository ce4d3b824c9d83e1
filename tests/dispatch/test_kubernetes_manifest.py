"""The Job objects `--pox-dispatch kubernetes` creates, checked against the Kubernetes API schema.

The schema is the official `kubernetes` client's models (generated from the API's OpenAPI spec):
a manifest is deserialized into `V1Job` and serialized back; a field the API does not know is
dropped on the way, a wrong type or a missing required field raises, so the round trip is equal
only for a well-formed object. `kubectl --dry-run=client` is not used: it needs an API server for
its REST mapping even in client mode (see docs/scale.md).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ci_mode import missing_tool

from pox_executor.dispatch import kubernetes as k8s
from pox_executor.errors import UsageError

IMAGE = "registry.example.org/pox/jobstep@sha256:" + "ab" * 32
RUN_ID = "2026-12-01T22-15-00Z-3f9a2c"


def api_client() -> Any:
    try:
        from kubernetes import client
    except ImportError:
        missing_tool("the Python package 'kubernetes' is not installed (pip install kubernetes)")
    return client.ApiClient()


def round_trip(manifest: dict[str, Any]) -> dict[str, Any]:
    api = api_client()
    job = api.deserialize(json.dumps(manifest), "V1Job", "application/json")
    result: dict[str, Any] = api.sanitize_for_serialization(job)
    return result


def settings(**overrides: Any) -> k8s.KubernetesSettings:
    values: dict[str, Any] = {
        "image": IMAGE,
        "volume_claim": "pox-work",
        "runtime_class": "kata-qemu-tdx",
        "kbs_url": "https://kbs.lab.example.org:8080",
    }
    values.update(overrides)
    return k8s.KubernetesSettings(**values)


def manifest(
    config: k8s.KubernetesSettings | None = None,
    resources: k8s.JobResources | None = None,
) -> dict[str, Any]:
    return k8s.job_manifest(
        config or settings(),
        run_id=RUN_ID,
        submission_id="7f3e2a.12.1",
        command=["pox", "jobstep", "/shared/wf/.pox/dispatch/run/tickets/7f3e2a.12.1.json"],
        workdir=Path("/shared/wf"),
        resources=resources or k8s.JobResources(cpus=4, mem_mb=8000, disk_mb=2000, runtime_min=30),
    )


@pytest.mark.parametrize("runtime_class", k8s.RUNTIME_CLASSES)
@pytest.mark.parametrize("delivery", k8s.KBS_DELIVERY)
def test_job_round_trips_through_the_api_schema(runtime_class: str, delivery: str) -> None:
    job = manifest(settings(runtime_class=runtime_class, kbs_delivery=delivery))
    assert round_trip(job) == job
    pod = job["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == runtime_class
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["command"][:2] == ["pox", "jobstep"]
    assert container["resources"]["limits"] == {
        "cpu": "4",
        "memory": "8000Mi",
        "ephemeral-storage": "2000Mi",
    }
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert job["spec"]["activeDeadlineSeconds"] == 30 * 60
    assert container["volumeMounts"] == [{"name": "workdir", "mountPath": "/shared/wf"}]
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "pox-work"}


def test_the_round_trip_catches_what_the_schema_does_not_allow() -> None:
    """The check can fail: a misspelt field is dropped, a wrong type or no containers raises."""
    job = manifest()
    misspelt = json.loads(json.dumps(job))
    pod = misspelt["spec"]["template"]["spec"]
    pod["runtimeClass"] = pod.pop("runtimeClassName")
    assert round_trip(misspelt) != misspelt
    no_containers = json.loads(json.dumps(job))
    no_containers["spec"]["template"]["spec"]["containers"] = None
    with pytest.raises(ValueError, match="containers"):
        round_trip(no_containers)
    wrong_type = json.loads(json.dumps(job))
    wrong_type["spec"]["backoffLimit"] = "none"
    with pytest.raises(ValueError):
        round_trip(wrong_type)


def test_broker_address_as_coco_reads_it() -> None:
    job = manifest(settings(kbs_delivery="both"))
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations[k8s.KERNEL_PARAMS_ANNOTATION] == (
        "agent.aa_kbc_params=cc_kbc::https://kbs.lab.example.org:8080"
    )
    document = k8s.decode_initdata(annotations[k8s.INITDATA_ANNOTATION])
    initdata = tomllib.loads(document)
    assert initdata["algorithm"] == "sha384"
    assert initdata["version"] == "0.1.0"
    aa = tomllib.loads(initdata["data"]["aa.toml"])
    cdh = tomllib.loads(initdata["data"]["cdh.toml"])
    assert aa["token_configs"]["kbs"]["url"] == "https://kbs.lab.example.org:8080"
    assert cdh["kbc"] == {"name": "cc_kbc", "url": "https://kbs.lab.example.org:8080"}
    # Reproducible: the same settings give the same annotation, hence the same init-data digest.
    assert manifest(settings(kbs_delivery="both")) == job
    assert len(k8s.initdata_digest(document)) == 96


def test_broker_certificate_goes_into_initdata() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    document = k8s.initdata_document("https://10.0.0.5:8080", pem)
    data = tomllib.loads(document)["data"]
    assert tomllib.loads(data["aa.toml"])["token_configs"]["kbs"]["cert"].strip() == pem
    assert tomllib.loads(data["cdh.toml"])["kbc"]["kbs_cert"].strip() == pem


def test_without_a_broker_no_annotation() -> None:
    job = manifest(settings(kbs_url=None))
    assert job["spec"]["template"]["metadata"]["annotations"] == {}
    assert round_trip(job) == job


def test_resources_from_the_snakemake_job() -> None:
    assert k8s.job_resources({}, threads=3, mem_mb=None) == k8s.JobResources(cpus=3)
    assert k8s.job_resources(
        {"cpus_per_task": 8, "mem_mb": 1024, "disk_mb": 10, "runtime": 90}, threads=1, mem_mb=None
    ) == k8s.JobResources(cpus=8, mem_mb=1024, disk_mb=10, runtime_min=90)
    with pytest.raises(UsageError, match="'mem_mb' is -5"):
        k8s.job_resources({"mem_mb": -5}, threads=1, mem_mb=None)
    minimal = manifest(resources=k8s.JobResources())
    assert "activeDeadlineSeconds" not in minimal["spec"]
    assert round_trip(minimal) == minimal


def test_job_names_are_valid_and_unique_per_attempt() -> None:
    names = {k8s.job_name(RUN_ID.upper() + "_x" * 40, f"sub.{i}") for i in range(100)}
    assert len(names) == 100
    for name in names:
        assert len(name) <= 63
        assert k8s._DNS_LABEL.match(name), name
    assert k8s.label_value("-a/b:" + "c" * 80 + ".") == ("a-b-" + "c" * 59)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image", "registry.example.org/pox/jobstep:latest", "expected an image by digest"),
        ("runtime_class", "runc", "expected one of kata-qemu-tdx"),
        ("namespace", "Bad_NS", "DNS-1123"),
        ("kbs_url", "kbs.example.org", "http"),
        ("kbs_url", "https://kbs.example.org/'''", "http"),
        ("kbs_delivery", "env", "expected one of initdata"),
    ],
)
def test_bad_settings_are_named(field: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        settings(**{field: value})
    assert f"'{field}'" in str(caught.value)


def test_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "kubernetes.toml"
    path.write_text(
        f'image = "{IMAGE}"\nvolume_claim = "pox-work"\nruntime_class = "kata-qemu-snp"\n'
        'kbs_url = "http://10.0.0.5:8080"\n[node_selector]\n"cc.example/tee" = "snp"\n'
    )
    loaded = k8s.load_settings(path)
    assert loaded.runtime_class == "kata-qemu-snp"
    job = manifest(loaded)
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"cc.example/tee": "snp"}
    assert round_trip(job) == job
    path.write_text(f'image = "{IMAGE}"\nvolume_claim = "pox-work"\nruntimeclass = "x"\n')
    with pytest.raises(UsageError, match=r"kubernetes.toml: unknown field 'runtimeclass'"):
        k8s.load_settings(path)
    path.write_text(f'image = "{IMAGE}"\n')
    with pytest.raises(UsageError, match=r"kubernetes.toml: field 'volume_claim' is missing"):
        k8s.load_settings(path)
    path.write_text('image = "x:latest"\nvolume_claim = "pox-work"\n')
    with pytest.raises(UsageError, match=r"kubernetes.toml: field 'image'"):
        k8s.load_settings(path)
    with pytest.raises(UsageError, match="not found"):
        k8s.load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (None, k8s.GONE),
        ({}, k8s.PENDING),
        ({"active": 1}, k8s.RUNNING),
        ({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}, k8s.SUCCEEDED),
        (
            {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "X"}]},
            k8s.FAILED,
        ),
        ({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]}, k8s.RUNNING),
    ],
)
def test_job_state_from_status(status: dict[str, Any] | None, state: str) -> None:
    assert k8s.job_state(status)[0] == state


def test_deadline_exceeded_names_the_reason() -> None:
    api = api_client()
    from kubernetes import client

    status = client.V1JobStatus(
        failed=1,
        conditions=[client.V1JobCondition(type="Failed", status="True", reason="DeadlineExceeded")],
    )
    assert k8s.job_state(api.sanitize_for_serialization(status)) == (k8s.FAILED, "DeadlineExceeded")


def test_no_cluster_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api_client()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(k8s.KubernetesError, match="no Kubernetes cluster configured") as caught:
        k8s.KubernetesCluster(settings())
    assert "KUBECONFIG" in (caught.value.hint or "")


def test_unreachable_api_server_is_a_clear_error(tmp_path: Path) -> None:
    """A kubeconfig naming a loopback port nobody listens on: refused, said in one line."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing answers there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_client()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
        f"clusters:\n- name: lab\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: me\n"
        "users:\n- name: me\n  user:\n    token: t\n"
    )
    with pytest.raises(k8s.KubernetesError, match=f"127.0.0.1:{port} is not reachable"):
        k8s.KubernetesCluster(settings(kubeconfig=str(kubeconfig)))
