"""`pox export`: a run as a Provenance Run Crate, as W3C PROV, or as its in-toto bundle.

Owns the mapping from the provenance graph (`audit/graph.py`) to standard formats:

- **RO-Crate** (ro-crate-py), conforming to the Provenance Run Crate profile 0.5 (and so to
  Workflow Run Crate, Process Run Crate and Workflow RO-Crate 1.0): the main Snakefile as the
  `ComputationalWorkflow`; per rule a tool (`SoftwareApplication`), a `HowToStep` and a
  `ControlAction`; per job a `CreateAction` (instrument, object, result, startTime, endTime,
  actionStatus, containerImage) whose `subjectOf` links its C2SP inclusion proof (a file in
  the crate whose `extra` line is the job's DSSE envelope, the log leaf) and the run log; an
  `OrganizeAction` for Snakemake with the PoX executor; the run's `CreateAction`; files with
  their `sha256` (the bytes on disk are copied into the crate only when they still have the
  recorded digest) and, for the files whose bytes are in the crate, their IPFS CID as an
  `identifier` (`PropertyValue`, `propertyID` "cid", profile `unixfs-v0-2015`: what Kubo's
  default `ipfs add` gives the bytes, computed offline by `storage/unixfs.py`). The run bundle
  is embedded at `.pox/runs/<run-id>/`, so the crate is itself a working directory for
  `pox verify`, `pox lineage` and `pox reproduce`.
- **PROV** (the `prov` package): PROV-JSON or PROV-N, from the same graph; a file version
  whose bytes are still on disk with the recorded digest carries `pox:cid` and
  `pox:cidProfile`.
- **in-toto**: the run's `attestations.intoto.jsonl`, byte for byte.

Nothing here writes into a run bundle; outputs never replace an existing path.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from pox_executor.audit.graph import FILE, jobs_of
from pox_executor.errors import PoxError, UsageError, VerificationError
from pox_executor.provenance import merkle
from pox_executor.provenance.bundle import RunBundle
from pox_executor.provenance.log import read_log_lines
from pox_executor.provenance.names import check_record_name, is_external
from pox_executor.provenance.tlog_proof import format_proof
from pox_executor.storage.unixfs import FileImporter, get_profile

FORMATS = ("rocrate", "prov", "provn", "intoto")
# Kubo's default `ipfs add` (CIDv0): any IPFS node, `ipfs add -n`, or Debian's `ipfs_cid` checks it
CID_PROFILE = "unixfs-v0-2015"
PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "provenance": "https://w3id.org/ro/wfrun/provenance/0.5",
    "wroc": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
_STATUS = {
    "succeeded": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
}
# Terms our crates use beyond (or, for bioschemas, as) the RO-Crate 1.1 context defines them:
# Workflow Run Crate's terms and the 1.1 IRIs of the bioschemas types, so the crate expands the
# same whichever context version a reader fetches.
CONTEXT_TERMS = {
    "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
    "FormalParameter": "https://bioschemas.org/FormalParameter",
    "containerImage": "https://w3id.org/ro/terms/workflow-run#containerImage",
    "ContainerImage": "https://w3id.org/ro/terms/workflow-run#ContainerImage",
    "DockerImage": "https://w3id.org/ro/terms/workflow-run#DockerImage",
    "sha256": "http://schema.org/sha256",
}
_LICENSE_UNSTATED = "#license-not-stated"
SNAKEMAKE_URL = "https://snakemake.github.io"
POX_URL = "https://pox.dev"


def default_output(run_id: str, fmt: str) -> Path:
    suffix = {
        "rocrate": ".crate",
        "prov": ".prov.json",
        "provn": ".provn",
        "intoto": ".intoto.jsonl",
    }
    return Path(f"{run_id}{suffix[fmt]}")


def export(
    graph: nx.DiGraph, bundle: RunBundle, fmt: str, output: Path, *, license: str | None = None
) -> Path:
    """Write run `bundle` (whose jobs are in `graph`) as `fmt` to `output` (must not exist)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if output.exists() or output.is_symlink():
        raise UsageError(f"{output} already exists; choose another path with -o")
    if not output.parent.is_dir():
        raise UsageError(f"{output.parent}: no such directory")
    if fmt == "intoto":
        shutil.copyfile(bundle.attestations_path, output)
    elif fmt in ("prov", "provn"):
        document = prov_document(graph, bundle.run_id)
        text = (
            document.serialize(format="json", indent=2) if fmt == "prov" else document.get_provn()
        )
        output.write_text(str(text) + "\n", encoding="utf-8")
    else:
        try:
            write_crate(graph, bundle, output, license=license)
        except BaseException:
            # `output` did not exist before (checked above): leave no half-written crate
            shutil.rmtree(output, ignore_errors=True)
            raise
    return output


# -- RO-Crate -----------------------------------------------------------------------------------


def write_crate(
    graph: nx.DiGraph, bundle: RunBundle, output: Path, *, license: str | None = None
) -> None:
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    run_id = bundle.run_id
    run = graph.graph["runs"][run_id]
    jobs = jobs_of(graph, run_id)
    if not jobs:
        raise UsageError(f"run {run_id} holds no job records: nothing to export")
    workdir = bundle.workdir
    crate = ROCrate(version="1.1")  # the version the Provenance Run Crate 0.5 profile binds
    crate.metadata.extra_terms = dict(CONTEXT_TERMS)
    crate.name = f"PoX run {run_id}"
    crate.description = (
        f"Snakemake workflow run {run_id} executed with the PoX executor: every job's record is "
        "an in-toto statement signed in a TEE session and covered by an RFC 9162 Merkle log"
        + (
            " (SIMULATED TEE evidence: no hardware vouches for these records)"
            if run["simulated"]
            else ""
        )
    )
    crate.root_dataset["datePublished"] = run["finished"] or run["started"]
    add = crate.add

    def entity(ident: str, props: dict[str, Any]) -> Any:
        return add(ContextEntity(crate, ident, properties=props))

    profiles = [
        entity(
            url,
            {"@type": "CreativeWork", "name": f"{key} profile", "version": url.rsplit("/", 1)[-1]},
        )
        for key, url in PROFILES.items()
    ]
    crate.root_dataset["conformsTo"] = profiles
    if license:
        crate.license = entity(license, {"@type": "CreativeWork", "name": license})
    else:
        crate.license = entity(
            _LICENSE_UNSTATED,
            {
                "@type": "CreativeWork",
                "name": "license not stated",
                "description": "pox export was not told the workflow's license "
                "(pass --license URL)",
            },
        )

    # the workflow: the main Snakefile (its bytes when they still have the recorded digest)
    sources = run["sources"]
    main_name = _main_snakefile(sources)
    workflow = _add_data_file(
        crate,
        workdir,
        main_name,
        _digest_of(sources, main_name),
        types=["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
    )
    other_sources = [
        _add_data_file(crate, workdir, s["name"], s["sha256"], types=["File", "SoftwareSourceCode"])
        for s in sources
        if s["name"] != main_name
    ]
    lang = entity(
        "https://w3id.org/workflowhub/workflow-ro-crate#snakemake",
        {
            "@type": "ComputerLanguage",
            "name": "Snakemake",
            "identifier": {"@id": "https://snakemake.readthedocs.io"},
            "url": {"@id": SNAKEMAKE_URL},
            "version": run["snakemake_version"],
        },
    )
    workflow["programmingLanguage"] = lang
    workflow["name"] = main_name
    crate.root_dataset["mainEntity"] = workflow

    # per rule: tool, step, control action
    rules: dict[str, list[str]] = {}
    for job in jobs:
        rules.setdefault(graph.nodes[job]["rule"], []).append(job)
    tools, steps = {}, {}
    for position, rule in enumerate(rules):
        tools[rule] = entity(
            f"#rule/{rule}", {"@type": "SoftwareApplication", "name": f"rule {rule}"}
        )
        steps[rule] = entity(
            f"#step/{rule}",
            {
                "@type": "HowToStep",
                "name": rule,
                "position": str(position),
                "workExample": tools[rule],
            },
        )
    workflow["hasPart"] = [*tools.values(), *other_sources]
    workflow["step"] = list(steps.values())

    log_entity = _embed_bundle(crate, bundle)
    envelopes = _envelope_lines(bundle)
    proofs = _inclusion_proofs(bundle)
    files: dict[str, Any] = {}
    images: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    for job in jobs:
        data = graph.nodes[job]
        envelope = data["envelope"]
        links = [log_entity] if log_entity is not None else []
        proof = proofs.get(envelope)
        line = envelopes.get(envelope)
        if proof is not None or line is not None:
            # one file per job: the C2SP inclusion proof whose `extra` line is the envelope
            # itself (the log leaf), or the bare envelope when no checkpoint covers it yet
            relative = (
                f"provenance/{envelope}.tlog-proof"
                if proof is not None
                else f"provenance/{envelope}.dsse.json"
            )
            links.insert(
                0,
                crate.add_file(
                    source=None,
                    dest_path=relative,
                    properties={
                        "name": f"envelope and inclusion proof of {data['label']}",
                        "encodingFormat": "text/plain",
                        "description": "C2SP tlog-proof@v1: `extra` is the job's DSSE envelope "
                        "(in-toto statement, SLSA provenance v1), then its RFC 9162 inclusion "
                        "proof and the run's signed checkpoint",
                    },
                ),
            )
            text = proof if proof is not None else (line or b"").decode("utf-8") + "\n"
            _write_text(output, relative, text)
        image = _image(images, entity, data)
        props: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"{data['label']} (job {data['jobid']}, attempt {data['attempt']})",
            "instrument": tools[data["rule"]],
            "object": [_file_entity(crate, files, graph, workdir, i) for i in _inputs(graph, job)],
            "result": [_file_entity(crate, files, graph, workdir, o) for o in _outputs(graph, job)],
            "actionStatus": {"@id": _STATUS[data["status"]]},
            "identifier": envelope,
            "containerImage": image,
            "subjectOf": links,
        }
        if data["started"]:
            props["startTime"] = data["started"]
        if data["finished"]:
            props["endTime"] = data["finished"]
        if data["status"] != "succeeded":
            props["error"] = f"exit code {data['exit_code']}"
        actions[job] = entity(f"#job/{envelope}", props)
    controls = [
        entity(
            f"#control/{rule}",
            {
                "@type": "ControlAction",
                "name": f"orchestrate rule {rule}",
                "instrument": steps[rule],
                "object": [actions[j] for j in rule_jobs],
            },
        )
        for rule, rule_jobs in rules.items()
    ]
    consumed = {i for j in jobs for i in _inputs(graph, j)}
    produced = {o for j in jobs for o in _outputs(graph, j)}
    raw = sorted(consumed - produced)
    final = sorted(produced - consumed)
    run_action = entity(
        f"#run/{run_id}",
        {
            "@type": "CreateAction",
            "name": f"run {run_id} of {main_name}",
            "instrument": workflow,
            "object": [_file_entity(crate, files, graph, workdir, f) for f in raw],
            "result": [_file_entity(crate, files, graph, workdir, f) for f in final],
            "actionStatus": {
                "@id": _STATUS.get(run["status"], "http://schema.org/FailedActionStatus")
            },
            **({"startTime": run["started"]} if run["started"] else {}),
            **({"endTime": run["finished"]} if run["finished"] else {}),
        },
    )
    engine = entity(
        "#snakemake-pox",
        {
            "@type": "SoftwareApplication",
            "name": f"Snakemake {run['snakemake_version']} with the PoX executor "
            f"{run['pox_version']}",
            "url": {"@id": POX_URL},
            "softwareVersion": run["pox_version"],
        },
    )
    entity(
        "#organize",
        {
            "@type": "OrganizeAction",
            "name": f"Snakemake with PoX orchestrating run {run_id}",
            "instrument": engine,
            "object": controls,
            "result": run_action,
            **({"startTime": run["started"]} if run["started"] else {}),
            **({"endTime": run["finished"]} if run["finished"] else {}),
        },
    )
    with warnings.catch_warnings():
        # files without a source are written by us (envelopes, proofs) or deliberately absent
        warnings.simplefilter("ignore", UserWarning)
        crate.write(output)


def _embed_bundle(crate: Any, bundle: RunBundle) -> Any:
    """The run bundle itself, at the path it has in a working directory: the crate is then one
    (`pox verify` and `pox reproduce` work on it, against the files copied in)."""
    where = f".pox/runs/{bundle.run_id}"
    log = None
    for path, what in (
        (bundle.attestations_path, "the run log: one DSSE envelope per line (in-toto)"),
        (bundle.checkpoint_path, "the signed C2SP checkpoint of the run log"),
        (bundle.path / "run.json", "the run's unsigned index"),
        (bundle.path / "chain.json", "the run's chain journal (unsigned index)"),
    ):
        if path.is_file():
            added = crate.add_file(
                source=path, dest_path=f"{where}/{path.name}", properties={"description": what}
            )
            log = added if path == bundle.attestations_path else log
    return log


def _write_text(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _main_snakefile(sources: list[Mapping[str, Any]]) -> str:
    names = [str(s["name"]) for s in sources]
    for candidate in ("Snakefile", "workflow/Snakefile", "snakefile", "workflow/snakefile"):
        if candidate in names:
            return candidate
    smk = [n for n in names if n.endswith(".smk")]
    if smk:
        return smk[0]
    if names:
        return str(names[0])
    raise UsageError("the run's signed session opening lists no workflow sources")


def _digest_of(sources: list[Mapping[str, Any]], name: str) -> str | None:
    return next((str(s["sha256"]) for s in sources if s["name"] == name), None)


def _add_data_file(
    crate: Any, workdir: Path, name: str, sha256: str | None, *, types: list[str] | None = None
) -> Any:
    """A File entity named as recorded; its bytes go in when they still match the record."""
    try:  # the crate's files are placed by these names: none may lead out of it
        check_record_name(name, where="a recorded file name")
    except VerificationError as exc:
        raise UsageError(
            f"cannot export: {exc}; a name outside the working directory would place a file "
            "outside the crate",
            hint="the run fails `pox verify`; export a run whose records verify",
        ) from exc
    props: dict[str, Any] = {"name": name}
    if types:
        props["@type"] = types
    if sha256:
        props["sha256"] = sha256
    local = workdir / name
    source = None
    cid = None if is_external(name) else file_cid(local, sha256)
    if cid is not None:
        source = local
        props["identifier"] = crate.add(_cid_entity(crate, cid))
    else:
        props["description"] = "not included: the file is gone or no longer has the recorded digest"
    if is_external(name):
        return crate.add(_external(crate, name, props))
    return crate.add_file(source=source, dest_path=name, properties=props)


def file_cid(path: Path, sha256: str | None) -> str | None:
    """The CID (profile CID_PROFILE) of the regular file at `path` if its bytes have the SHA-256
    `sha256`, else None; one read serves both digests."""
    if not sha256 or path.is_symlink() or not path.is_file():
        return None
    digest = hashlib.sha256()
    importer = FileImporter(get_profile(CID_PROFILE))
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            importer.write(chunk)
    if digest.hexdigest() != sha256:
        return None
    return str(importer.finish().cid)


def _cid_entity(crate: Any, cid: str) -> Any:
    from rocrate.model.contextentity import ContextEntity

    return ContextEntity(
        crate,
        f"#cid/{cid}",
        properties={
            "@type": "PropertyValue",
            "propertyID": "cid",
            "name": f"IPFS CID ({CID_PROFILE})",
            "value": cid,
        },
    )


def _external(crate: Any, name: str, props: dict[str, Any]) -> Any:
    from rocrate.model.contextentity import ContextEntity

    return ContextEntity(
        crate, "file://" + name.removeprefix("external:"), properties={"@type": "File", **props}
    )


def _file_entity(
    crate: Any, files: dict[str, Any], graph: nx.DiGraph, workdir: Path, node: str
) -> Any:
    if node not in files:
        data = graph.nodes[node]
        if data["directory"]:
            props = {
                "name": data["name"],
                "sha256": data["sha256"],
                "description": "a directory() output; sha256 of its sorted manifest",
            }
            files[node] = crate.add_dataset(
                source=None, dest_path=data["name"].rstrip("/") + "/", properties=props
            )
        else:
            files[node] = _add_data_file(crate, workdir, data["name"], data["sha256"])
    return files[node]


def _inputs(graph: nx.DiGraph, job: str) -> list[str]:
    return sorted(n for n in graph.predecessors(job) if graph.nodes[n]["kind"] == FILE)


def _outputs(graph: nx.DiGraph, job: str) -> list[str]:
    return sorted(
        n
        for n in graph.successors(job)
        if graph.nodes[n]["kind"] == FILE and graph.edges[job, n]["kind"] == "output"
    )


def _image(images: dict[str, Any], entity: Any, data: Mapping[str, Any]) -> Any:
    digest = str(data["image_digest"])
    if digest not in images:
        backend = data.get("backend") or "unknown"
        props: dict[str, Any] = {
            "@type": "ContainerImage",
            "name": f"PoX {backend} environment",
            "sha256": digest.removeprefix("sha256:"),
            "description": f"the image the job ran in, as the {backend} backend measured it",
        }
        if backend == "docker":
            props["additionalType"] = {"@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"}
        images[digest] = entity(f"#image/{digest.removeprefix('sha256:')}", props)
    return images[digest]


def _envelope_lines(bundle: RunBundle) -> dict[str, bytes]:
    from hashlib import sha256

    return {
        sha256(line).hexdigest(): line for line in read_log_lines(bundle.attestations_path).lines
    }


def _inclusion_proofs(bundle: RunBundle) -> dict[str, str]:
    """Envelope digest -> its tlog-proof in the run's signed checkpoint (covered lines only)."""
    from hashlib import sha256

    from pox_executor.provenance.checkpoint import parse_signed_note

    try:
        text = bundle.read_checkpoint()
        checkpoint, _ = parse_signed_note(text)
    except (OSError, PoxError):  # read_checkpoint: BundleError
        return {}
    lines = read_log_lines(bundle.attestations_path).lines[: checkpoint.size]
    tree = merkle.MerkleTree([merkle.leaf_hash(line) for line in lines])
    return {
        sha256(line).hexdigest(): format_proof(index, tree.inclusion_proof(index), text, line)
        for index, line in enumerate(lines)
    }


# -- W3C PROV -----------------------------------------------------------------------------------


def prov_document(graph: nx.DiGraph, run_id: str) -> Any:
    """PROV: jobs and the run are activities, file versions entities, engine and enclaves agents."""
    from prov.model import ProvDocument

    doc = ProvDocument()
    doc.set_default_namespace(f"{POX_URL}/run/{run_id}/")
    doc.add_namespace("pox", f"{POX_URL}/ns#")
    run = graph.graph["runs"][run_id]
    engine = doc.agent(
        "engine",
        {
            "prov:type": "prov:SoftwareAgent",
            "prov:label": f"Snakemake {run['snakemake_version']} with PoX {run['pox_version']}",
        },
    )
    run_activity = doc.activity(
        f"run/{run_id}",
        run["started"],
        run["finished"],
        {"prov:label": f"run {run_id}", "pox:status": run["status"]},
    )
    doc.wasAssociatedWith(run_activity, engine)
    entities: dict[str, Any] = {}

    def file_entity(node: str) -> Any:
        if node not in entities:
            data = graph.nodes[node]
            attrs = {"prov:label": data["name"], "pox:name": data["name"]}
            if data["sha256"]:
                attrs["pox:sha256"] = data["sha256"]
            local = Path(run["workdir"]) / data["name"]
            cid = None if is_external(data["name"]) else file_cid(local, data["sha256"])
            if cid is not None:
                attrs["pox:cid"] = cid
                attrs["pox:cidProfile"] = CID_PROFILE
            entities[node] = doc.entity(f"file/{data['name']}@{data['sha256'] or 'none'}", attrs)
        return entities[node]

    enclaves: dict[str, Any] = {}
    for job in jobs_of(graph, run_id):
        data = graph.nodes[job]
        activity = doc.activity(
            f"job/{data['envelope']}",
            data["started"],
            data["finished"],
            {
                "prov:label": data["label"],
                "pox:rule": data["rule"],
                "pox:status": data["status"],
                "pox:envelope": data["envelope"],
                "pox:evidence": data["evidence_type"],
                "pox:verified": str(data["verified"]),
            },
        )
        doc.wasInformedBy(activity, run_activity)
        builder = data["builder_id"]
        if builder not in enclaves:
            enclaves[builder] = doc.agent(
                f"enclave/{len(enclaves)}",
                {
                    "prov:type": "prov:SoftwareAgent",
                    "prov:label": builder,
                    "pox:image": data["image_digest"],
                },
            )
            doc.actedOnBehalfOf(enclaves[builder], engine)
        doc.wasAssociatedWith(activity, enclaves[builder])
        inputs = [file_entity(i) for i in _inputs(graph, job)]
        for entity in inputs:
            doc.used(activity, entity)
        for out in _outputs(graph, job):
            generated = file_entity(out)
            doc.wasGeneratedBy(generated, activity)
            for entity in inputs:
                doc.wasDerivedFrom(generated, entity, activity)
        envelope = doc.entity(
            f"envelope/{data['envelope']}",
            {"prov:type": "pox:DsseEnvelope", "pox:sha256": data["envelope"]},
        )
        doc.wasGeneratedBy(envelope, activity)
    return doc
