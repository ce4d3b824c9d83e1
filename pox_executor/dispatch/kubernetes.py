"""`--pox-dispatch kubernetes`: each job is a Kubernetes Job in a Confidential Containers pod.

Owns the Kubernetes side only: the cluster settings file (`KubernetesSettings`, TOML), the
`batch/v1` Job object built for one job attempt (`job_manifest`), the CoCo init-data that tells
the guest's attestation agent and confidential data hub where the key broker is, the mapping of a
Job's status to a finished/unfinished state, the calls to a real API server through the
official `kubernetes` client (`KubernetesCluster`), and the head's dispatcher that creates a Job
per attempt and waits for its statement (`KubernetesDispatcher`, behind the `ClusterApi`
protocol so tests can run each Job's command locally). What runs in the pod is `pox jobstep TICKET`,
exactly as on SLURM: the node side, the ticket and the head's collector are `dispatch.node`,
`dispatch.protocol` and `dispatch.collector` (not this module's).

The Job (one per Snakemake job attempt; Snakemake does the retries, so `backoffLimit` is 0):
- `runtimeClassName`: a Kata/CoCo runtime class (`kata-qemu-tdx`, `kata-qemu-snp`, or
  `kata-qemu-coco-dev` for CoCo without TEE hardware);
- the image by digest (`repo@sha256:...`): the guest pulls and measures exactly that image;
- the broker's address as CoCo reads it: the init-data annotation
  `io.katacontainers.config.runtime.cc_init_data` (base64 of the gzipped init-data TOML, whose
  `aa.toml` and `cdh.toml` name the KBS URL; its digest is bound into the TEE evidence), and/or
  the older kernel-parameter annotation
  `io.katacontainers.config.hypervisor.kernel_params` = `agent.aa_kbc_params=cc_kbc::<url>`;
- resources from the Snakemake job (`cpus_per_task` or threads, `mem_mb`, `disk_mb`, `runtime`
  in minutes as `activeDeadlineSeconds`), requests equal to limits (Kata sizes the VM by them);
- the working directory from a ReadWriteMany volume claim mounted at the same path as on the
  head, so the ticket, the inputs and the spool are where the head wrote them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pox_executor.dispatch.cluster import ClusterDispatcher, Waiting
from pox_executor.dispatch.protocol import remove_quietly
from pox_executor.dispatch.slurm import DispatchOptions
from pox_executor.enclave.runtime import JobSpec
from pox_executor.errors import PoxError, UsageError
from pox_executor.provenance.recorder import JobFacts, RunRecorder

log = logging.getLogger(__name__)

RUNTIME_CLASSES = ("kata-qemu-tdx", "kata-qemu-snp", "kata-qemu-coco-dev")
INITDATA_ANNOTATION = "io.katacontainers.config.runtime.cc_init_data"
KERNEL_PARAMS_ANNOTATION = "io.katacontainers.config.hypervisor.kernel_params"
KBS_DELIVERY = ("initdata", "kernel-params", "both")
# The init-data spec version and digest algorithm CoCo's guest components accept.
INITDATA_VERSION = "0.1.0"
INITDATA_ALGORITHM = "sha384"
LABEL_RUN = "pox.snakemake.dev/run"
ANNOTATION_SUBMISSION = "pox.snakemake.dev/submission-id"
CONTAINER_NAME = "jobstep"
WORK_VOLUME = "workdir"
_IMAGE_BY_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_KBS_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/\-]*)?$")
_LABEL_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class KubernetesError(PoxError):
    """The Kubernetes API server could not be reached or refused a request (quotes its reason)."""


@dataclass(frozen=True)
class KubernetesSettings:
    """Where and how a run's Jobs are created (the `--pox-kubernetes-config` TOML file)."""

    image: str  # the jobstep image, by digest
    volume_claim: str  # ReadWriteMany claim holding the working directory
    runtime_class: str = "kata-qemu-coco-dev"
    namespace: str = "default"
    kbs_url: str | None = None  # the key broker (Trustee KBS protocol), e.g. PoX's SMS
    kbs_cert: str | None = None  # PEM of the broker's TLS certificate, when not publicly trusted
    kbs_delivery: str = "initdata"
    service_account: str | None = None
    kubeconfig: str | None = None  # default: $KUBECONFIG, ~/.kube/config, then in-cluster
    context: str | None = None
    ttl_after_finished_s: int = 3600
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # The head's address the pods reach its collector at (it listens there, on a free port);
    # None: $POX_COLLECTOR_HOST, else loopback (as `--pox-dispatch slurm`).
    collector_host: str | None = None

    def __post_init__(self) -> None:
        where = "kubernetes settings"
        if not _IMAGE_BY_DIGEST.match(self.image):
            raise UsageError(
                f"{where}: field 'image' is {self.image!r}; expected an image by digest, "
                "'repository@sha256:<64 hex>' (the guest measures exactly that image)",
                hint="docker inspect --format '{{index .RepoDigests 0}}' IMAGE prints it",
            )
        if self.runtime_class not in RUNTIME_CLASSES:
            raise UsageError(
                f"{where}: field 'runtime_class' is {self.runtime_class!r}; expected one of "
                f"{', '.join(RUNTIME_CLASSES)}"
            )
        for name in ("namespace", "volume_claim"):
            value = getattr(self, name)
            if not _DNS_LABEL.match(value):
                raise UsageError(
                    f"{where}: field {name!r} is {value!r}; expected a DNS-1123 label "
                    "(lower-case letters, digits and '-', at most 63)"
                )
        if self.kbs_url is not None and not _KBS_URL.match(self.kbs_url):
            raise UsageError(
                f"{where}: field 'kbs_url' is {self.kbs_url!r}; expected an http(s) URL "
                "such as 'https://kbs.example.org:8080'"
            )
        if self.kbs_delivery not in KBS_DELIVERY:
            raise UsageError(
                f"{where}: field 'kbs_delivery' is {self.kbs_delivery!r}; expected one of "
                f"{', '.join(KBS_DELIVERY)}"
            )
        if self.kbs_cert is not None and "'''" in self.kbs_cert:
            raise UsageError(f"{where}: field 'kbs_cert' must be a PEM certificate")
        if self.ttl_after_finished_s < 0:
            raise UsageError(f"{where}: field 'ttl_after_finished_s' must be >= 0")


_SETTINGS_FIELDS: dict[str, type] = {
    "image": str,
    "volume_claim": str,
    "runtime_class": str,
    "namespace": str,
    "kbs_url": str,
    "kbs_cert": str,
    "kbs_delivery": str,
    "service_account": str,
    "kubeconfig": str,
    "context": str,
    "ttl_after_finished_s": int,
    "node_selector": dict,
    "collector_host": str,
}


def load_settings(path: Path) -> KubernetesSettings:
    """Read a settings file; every error names the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: Kubernetes settings file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the Kubernetes settings ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    return settings_from_mapping(data, where=str(path))


def settings_from_mapping(data: Mapping[str, Any], *, where: str) -> KubernetesSettings:
    unknown = sorted(set(data) - set(_SETTINGS_FIELDS))
    if unknown:
        raise UsageError(
            f"{where}: unknown field {unknown[0]!r}; known: {', '.join(sorted(_SETTINGS_FIELDS))}"
        )
    for name in ("image", "volume_claim"):
        if name not in data:
            raise UsageError(f"{where}: field {name!r} is missing")
    for name, kind in _SETTINGS_FIELDS.items():
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise UsageError(f"{where}: field {name!r} must be a {kind.__name__}")
    selector = data.get("node_selector", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise UsageError(f"{where}: field 'node_selector' must map strings to strings")
    try:
        return KubernetesSettings(**data)
    except UsageError as exc:
        raise UsageError(str(exc).replace("kubernetes settings", where, 1), hint=exc.hint) from None


# -- CoCo init-data ------------------------------------------------------------------------------


def initdata_document(kbs_url: str, kbs_cert: str | None = None) -> str:
    """The init-data TOML naming the KBS for the attestation agent and confidential data hub."""
    cert = f'\ncert = """\n{kbs_cert.strip()}\n"""' if kbs_cert else ""
    kbs_cert_line = f'\nkbs_cert = """\n{kbs_cert.strip()}\n"""' if kbs_cert else ""
    aa = f"[token_configs]\n[token_configs.coco_as]\nurl = '{kbs_url}'\n\n"
    aa += f"[token_configs.kbs]\nurl = '{kbs_url}'{cert}\n"
    cdh = "socket = 'unix:///run/confidential-containers/cdh.sock'\ncredentials = []\n\n"
    cdh += f"[kbc]\nname = 'cc_kbc'\nurl = '{kbs_url}'{kbs_cert_line}\n"
    return (
        f'algorithm = "{INITDATA_ALGORITHM}"\nversion = "{INITDATA_VERSION}"\n\n[data]\n'
        f"\"aa.toml\" = '''\n{aa}'''\n\n\"cdh.toml\" = '''\n{cdh}'''\n"
    )


def encode_initdata(document: str) -> str:
    """The annotation value: base64 of the gzipped document (mtime 0, so it is reproducible)."""
    return base64.b64encode(gzip.compress(document.encode("utf-8"), mtime=0)).decode("ascii")


def decode_initdata(value: str) -> str:
    """The document an annotation value carries (what the guest reads)."""
    return gzip.decompress(base64.b64decode(value, validate=True)).decode("utf-8")


def initdata_digest(document: str) -> str:
    """The init-data digest the TEE binds (TDX MRCONFIGID / SNP HOST_DATA hold it, padded)."""
    return hashlib.sha384(document.encode("utf-8")).hexdigest()


def kbs_annotations(settings: KubernetesSettings) -> dict[str, str]:
    """The pod annotations that tell the guest where the key broker is (none without one)."""
    if settings.kbs_url is None:
        return {}
    annotations = {}
    if settings.kbs_delivery in ("initdata", "both"):
        document = initdata_document(settings.kbs_url, settings.kbs_cert)
        annotations[INITDATA_ANNOTATION] = encode_initdata(document)
    if settings.kbs_delivery in ("kernel-params", "both"):
        annotations[KERNEL_PARAMS_ANNOTATION] = f"agent.aa_kbc_params=cc_kbc::{settings.kbs_url}"
    return annotations


# -- the Job object ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobResources:
    """What a Snakemake job asks for, in Kubernetes terms."""

    cpus: int = 1
    mem_mb: int | None = None
    disk_mb: int | None = None
    runtime_min: int | None = None


def job_resources(resources: Mapping[str, Any], threads: int, mem_mb: int | None) -> JobResources:
    """From a job's Snakemake resources (as the SLURM dispatch reads them) and its threads."""

    def positive(name: str, value: Any) -> int | None:
        if value in (None, "") or isinstance(value, bool):
            return None
        if not isinstance(value, int | float) or value <= 0:
            raise UsageError(f"resource {name!r} is {value!r}; expected a positive number")
        return max(1, int(value))

    cpus = positive("cpus_per_task", resources.get("cpus_per_task")) or max(1, int(threads))
    return JobResources(
        cpus=cpus,
        mem_mb=positive("mem_mb", resources.get("mem_mb", mem_mb)),
        disk_mb=positive("disk_mb", resources.get("disk_mb")),
        runtime_min=positive("runtime", resources.get("runtime")),
    )


def job_name(run_id: str, submission_id: str) -> str:
    """A DNS-1123 Job name (at most 63 characters, also a label value) unique per attempt."""
    digest = hashlib.sha256(f"{run_id}\0{submission_id}".encode()).hexdigest()[:16]
    prefix = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:40].strip("-") or "run"
    return f"pox-{prefix}-{digest}"


def label_value(text: str) -> str:
    """A label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    return _LABEL_VALUE_UNSAFE.sub("-", text).strip("._-")[:63].strip("._-") or "x"


def job_manifest(
    settings: KubernetesSettings,
    *,
    run_id: str,
    submission_id: str,
    command: Sequence[str],
    workdir: Path,
    resources: JobResources,
) -> dict[str, Any]:
    """The `batch/v1` Job (plain JSON data) that runs `command` once in a CoCo pod."""
    if not command:
        raise UsageError("a Kubernetes job needs a command")
    quantities: dict[str, str] = {"cpu": str(resources.cpus)}
    if resources.mem_mb:
        quantities["memory"] = f"{resources.mem_mb}Mi"
    if resources.disk_mb:
        quantities["ephemeral-storage"] = f"{resources.disk_mb}Mi"
    name = job_name(run_id, submission_id)
    labels = {LABEL_RUN: label_value(run_id)}
    pod_spec: dict[str, Any] = {
        "runtimeClassName": settings.runtime_class,
        "restartPolicy": "Never",
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": settings.image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(command),
                "workingDir": str(workdir),
                "resources": {"requests": dict(quantities), "limits": dict(quantities)},
                "volumeMounts": [{"name": WORK_VOLUME, "mountPath": str(workdir)}],
            }
        ],
        "volumes": [
            {"name": WORK_VOLUME, "persistentVolumeClaim": {"claimName": settings.volume_claim}}
        ],
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,  # Snakemake retries; each attempt is its own Job and record
        "ttlSecondsAfterFinished": settings.ttl_after_finished_s,
        "template": {
            "metadata": {"labels": dict(labels), "annotations": kbs_annotations(settings)},
            "spec": pod_spec,
        },
    }
    if resources.runtime_min:
        job_spec["activeDeadlineSeconds"] = resources.runtime_min * 60
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_SUBMISSION: submission_id},
        },
        "spec": job_spec,
    }


# -- status --------------------------------------------------------------------------------------

PENDING, RUNNING, SUCCEEDED, FAILED, GONE = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "GONE"
FINISHED = frozenset({SUCCEEDED, FAILED, GONE})


def job_state(status: Mapping[str, Any] | None) -> tuple[str, str]:
    """(state, reason) of a Job from its `status` (API JSON); None: the Job no longer exists."""
    if status is None:
        return GONE, "the Job no longer exists"
    for condition in status.get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return SUCCEEDED, ""
        if condition.get("type") in ("Failed", "FailureTarget"):
            return FAILED, str(condition.get("reason") or condition.get("message") or "Failed")
    if status.get("succeeded"):
        return SUCCEEDED, ""
    if status.get("failed"):
        return FAILED, "pod failed"
    if status.get("active"):
        return RUNNING, ""
    return PENDING, ""


# -- the API server ------------------------------------------------------------------------------


class KubernetesCluster:
    """A real API server reached with the official client (kubeconfig, else in-cluster)."""

    def __init__(self, settings: KubernetesSettings) -> None:
        try:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException
        except ImportError:
            raise UsageError(
                "--pox-dispatch kubernetes needs the Python package 'kubernetes'",
                hint="pip install 'snakemake-executor-plugin-pox[kubernetes]'",
            ) from None
        self.settings = settings
        try:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig, context=settings.context
            )
        except (ConfigException, OSError, TypeError) as kube_exc:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
                api = client.ApiClient()
            except ConfigException:
                raise KubernetesError(
                    f"no Kubernetes cluster configured: {kube_exc}",
                    hint="set KUBECONFIG (or 'kubeconfig' in the settings file) to a "
                    "kubeconfig of a cluster with Confidential Containers, or run inside one",
                ) from None
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        try:
            client.VersionApi(api).get_code(_request_timeout=10)
        except Exception as exc:
            host = api.configuration.host
            raise KubernetesError(
                f"the Kubernetes API server at {host} is not reachable: {_reason(exc)}",
                hint="check the kubeconfig's server address and that the cluster is up",
            ) from None

    def create_job(self, manifest: Mapping[str, Any]) -> None:
        api = self._batch.api_client
        job = api.deserialize(json.dumps(manifest), "V1Job", "application/json")
        try:
            self._batch.create_namespaced_job(self.settings.namespace, job)
        except Exception as exc:
            name = manifest["metadata"]["name"]
            raise KubernetesError(f"creating Job {name} failed: {_reason(exc)}") from None

    def job_states(self, run_id: str) -> dict[str, tuple[str, str]]:
        """Job name -> (state, reason) of every Job of the run (one list call)."""
        try:
            jobs = self._batch.list_namespaced_job(
                self.settings.namespace, label_selector=f"{LABEL_RUN}={label_value(run_id)}"
            )
        except Exception as exc:
            raise KubernetesError(f"listing the run's Jobs failed: {_reason(exc)}") from None
        api = self._batch.api_client
        return {
            str(job.metadata.name): job_state(api.sanitize_for_serialization(job.status))
            for job in jobs.items
            if job.metadata is not None
        }

    def delete_job(self, name: str) -> None:
        try:
            self._batch.delete_namespaced_job(
                name, self.settings.namespace, propagation_policy="Background"
            )
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise KubernetesError(f"deleting Job {name} failed: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    body = getattr(exc, "body", None)
    text = f"{reason}: {body}" if reason and body else str(reason or exc)
    return " ".join(text.split())[:400]


# -- the dispatcher ------------------------------------------------------------------------------


class ClusterApi(Protocol):
    """What the dispatcher asks of a cluster (`KubernetesCluster` is the real one)."""

    def create_job(self, manifest: Mapping[str, Any]) -> None: ...

    def job_states(self, run_id: str) -> dict[str, tuple[str, str]]: ...

    def delete_job(self, name: str) -> None: ...


SETTINGS_ENV = "POX_KUBERNETES_CONFIG"
SETTINGS_FILE = "pox-kubernetes.toml"


def settings_path(workdir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """`$POX_KUBERNETES_CONFIG`, else `pox-kubernetes.toml` in the working directory."""
    configured = (os.environ if environ is None else environ).get(SETTINGS_ENV)
    return Path(configured) if configured else workdir / SETTINGS_FILE


@dataclass(kw_only=True)
class _Waiting(Waiting):
    """A Job the head waits for (`state`: its finished state, once seen)."""

    name: str
    reason: str = ""
    listed: bool = False  # seen in a status listing at least once


class KubernetesDispatcher(ClusterDispatcher):
    """Runs a run's jobs as Kubernetes Jobs and collects their node-signed statements.

    As on SLURM (the shared part is `dispatch.cluster`): a ticket per attempt on the shared
    volume, the pod runs `pox jobstep TICKET`, which posts the signed statement to this head's
    collector (and spools it); the head waits for the statement or for the Job to finish,
    collects the spooled copy if HTTP did not deliver it, and records an attempt whose pod left
    no statement as failed, naming the Job's state. A Job that FAILED (or could not be created)
    leaves no grace period: its pod is not recording anything any more.
    """

    def __init__(
        self,
        recorder: RunRecorder,
        options: DispatchOptions,
        settings: KubernetesSettings,
        cluster: ClusterApi,
        *,
        collector_host: str = "127.0.0.1",
        command: Sequence[str] = ("pox", "jobstep"),
        logger: Any = None,
    ) -> None:
        super().__init__(recorder, options, collector_host=collector_host, logger=logger)
        self.settings = settings
        self.cluster = cluster
        self.command = tuple(command)
        self._start_polling("pox-k8s-poll")

    def manifest_for(self, facts: Sequence[JobFacts], spec: JobSpec, ticket_path: Path) -> Any:
        resources: dict[str, Any] = {}
        for f in facts:  # a group's members: the first that sets a resource wins
            for name, value in f.resources.items():
                resources.setdefault(name, value)
        return job_manifest(
            self.settings,
            run_id=self.recorder.run_id,
            submission_id=spec.invocation_id,
            command=[*self.command, str(ticket_path)],
            workdir=self.workdir,
            resources=job_resources(resources, spec.threads, spec.mem_mb),
        )

    def execute(self, facts: Sequence[JobFacts], spec: JobSpec, script: Path | None) -> str | None:
        """Create the Job, wait for its statement, return an error text (None: succeeded)."""
        ticket, path = self._write_ticket(facts, spec, script)
        sid = ticket.submission_id
        manifest = self.manifest_for(facts, spec, path)
        waiting = _Waiting(name=manifest["metadata"]["name"], ticket=ticket)
        with self._lock:
            self._waiting[sid] = waiting
        try:
            self.cluster.create_job(manifest)
            if self.collector.receipt(sid) is not None:
                waiting.done.set()  # delivered before we started waiting
            waiting.done.wait()
        except KubernetesError as exc:
            waiting.state, waiting.reason = FAILED, str(exc)
        finally:
            with self._lock:
                self._waiting.pop(sid, None)
        try:
            return self._outcome(waiting, facts, spec)
        finally:
            remove_quietly(path)

    def _ended(self, waiting: _Waiting, *, detailed: bool) -> str:
        reason = f" ({waiting.reason})" if waiting.reason else ""
        return f"Kubernetes Job {waiting.name} ended {waiting.state or 'UNKNOWN'}{reason}"

    def _ran_in(self, waiting: _Waiting) -> str:
        return f"in Kubernetes Job {waiting.name}"

    def _gave_up(self, waiting: _Waiting) -> bool:
        return waiting.state == FAILED

    def _poll(self, waiting: Sequence[_Waiting]) -> None:
        try:
            states = self.cluster.job_states(self.recorder.run_id)
        except KubernetesError as exc:
            self.logger.warning(f"PoX: Kubernetes status query failed (will retry): {exc}")
            return
        for job in waiting:
            # a Job created a moment ago may not be listed yet; one listed before and not
            # now was deleted (by someone, or its TTL): it ends as GONE
            if job.name in states:
                job.listed = True
                state, reason = states[job.name]
            elif job.listed:
                state, reason = job_state(None)
            else:
                continue
            if state in FINISHED:
                job.state, job.reason = state, reason
                job.done.set()

    def cancel_all(self) -> None:
        with self._lock:
            names = [w.name for w in self._waiting.values() if isinstance(w, _Waiting)]
        for name in names:
            try:
                self.cluster.delete_job(name)
            except KubernetesError as exc:
                self.logger.warning(f"PoX: {exc}")


def open_kubernetes_dispatcher(
    recorder: RunRecorder, options: DispatchOptions, *, logger: Any = None
) -> KubernetesDispatcher:
    """`--pox-dispatch kubernetes`: settings from the file, a real API server, then dispatch."""
    settings = load_settings(settings_path(recorder.workdir))
    return KubernetesDispatcher(
        recorder,
        options,
        settings,
        KubernetesCluster(settings),
        collector_host=settings.collector_host or options.collector_host,
        logger=logger,
    )
