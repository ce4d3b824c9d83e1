"""Reads what PoX records from Snakemake's job objects, in one place.

Snakemake's job attributes are not a stable API (see FACTS.md); everything that touches them lives
here and returns plain data (`JobFacts`), so the recorder and runtimes never see Snakemake types.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pox_executor.provenance.recorder import JobFacts, OutputFile

NETWORK_RESOURCE = "pox_network"
# Resource entries that describe the machine, not the job: kept out of the statement.
_VOLATILE_RESOURCES = {"tmpdir", "_nodes", "_cores"}


def _flagged(item: Any, flag: str) -> bool:
    flags = getattr(item, "flags", None) or {}
    return bool(flags.get(flag, False))


def _rel(path: Any, workdir: Path) -> str:
    text = str(path)
    if os.path.isabs(text):
        try:
            return Path(text).relative_to(workdir).as_posix()
        except ValueError:
            return text
    return text


def _named(namedlist: Any) -> dict[str, Any]:
    try:
        named = dict(namedlist.items())
    except (AttributeError, TypeError):
        named = {}
    positional = [v for v in list(namedlist or []) if not any(v is x for x in named.values())]
    if positional:
        named["_positional"] = positional
    return named


def _in_basedir(rule: Any, path: str) -> str:
    """A rule's script/notebook path is relative to the directory of the Snakefile defining it."""
    if os.path.isabs(path) or "://" in path:
        return path
    basedir = rule.basedir
    try:
        base = str(basedir.get_path_or_uri(secret_free=True))
    except (AttributeError, TypeError):
        base = str(basedir)
    return os.path.normpath(os.path.join(base, path))


def job_facts(job: Any, workdir: Path) -> JobFacts:
    """Plain facts of one (non-group) Snakemake job."""
    rule = job.rule
    resources = {k: v for k, v in _named(job.resources).items() if k not in _VOLATILE_RESOURCES}
    network = bool(resources.get(NETWORK_RESOURCE, 0))
    script = getattr(rule, "script", None)
    script_path = _rel(_in_basedir(rule, str(script)), workdir) if script else None
    shell = getattr(rule, "shellcmd", None)
    shell_formatted = None
    if shell:
        try:
            shell_formatted = str(job.shellcmd)
        except Exception:
            shell_formatted = str(shell)
    conda = getattr(job, "conda_env_spec", None)
    container = getattr(job, "container_img_url", None)
    has_run = (
        bool(getattr(rule, "run_func", None))
        and not shell
        and not script
        and not (getattr(rule, "notebook", None) or getattr(rule, "wrapper", None))
    )
    extra = []
    for attr in ("notebook",):
        value = getattr(rule, attr, None)
        if value:
            extra.append(_rel(_in_basedir(rule, str(value)), workdir))
    return JobFacts(
        jobid=int(job.jobid),
        rule=str(rule.name),
        attempt=int(job.attempt),
        inputs=tuple(_rel(f, workdir) for f in job.input),
        outputs=tuple(
            OutputFile(
                path=_rel(f, workdir),
                is_directory=_flagged(f, "directory"),
                is_temp=_flagged(f, "temp"),
            )
            for f in job.output
        ),
        logs=tuple(_rel(f, workdir) for f in job.log),
        wildcards={str(k): str(v) for k, v in dict(job.wildcards_dict).items()},
        params=_named(job.params),
        threads=int(job.threads),
        resources=resources,
        shell_command=shell_formatted,
        script=script_path,
        has_run_block=has_run,
        snakefile=_rel(getattr(rule, "snakefile", ""), workdir),
        conda_env=str(conda) if conda else None,
        container=str(container) if container else None,
        network=network,
        extra_code=tuple(extra),
    )


_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def direct_shell_command(job: Any) -> tuple[str, dict[str, str]] | None:
    """The shell command that runs a plain `shell:` job exactly as Snakemake's `shell()` would.

    Re-invoking Snakemake costs 1-2 s per job; a plain shell job needs none of it. Returns None
    (use the Snakemake subprocess) for anything else: group, run/script/notebook/wrapper rules,
    shadow, benchmark, pipes and services, conda, containers, environment modules.
    """
    import shlex

    from snakemake.shell import shell

    rule = job.rule
    if job.is_group() or getattr(job, "is_norun", False):
        return None
    if not getattr(rule, "shellcmd", None):
        return None
    if any(getattr(rule, attr, None) for attr in ("script", "notebook", "wrapper", "cwl")):
        return None
    if job.is_shadow or job.benchmark is not None or job.is_pipe or job.is_service:
        return None
    if getattr(job, "conda_env_spec", None) or getattr(job, "container_img_url", None):
        return None
    if getattr(job, "env_modules", None):
        return None
    if job.resources.get("shell_exec") is not None:
        return None
    executable = shell.get_executable() or "/bin/sh"
    body = " ".join(
        (shell._get_process_prefix(executable), str(job.shellcmd), shell._process_suffix)
    )
    threads = str(job.threads)
    env = dict.fromkeys(_THREAD_ENV, threads)
    return f"exec {shlex.quote(executable)} -c {shlex.quote(body)}", env
