"""Reads what PoX records from Snakemake's job objects, in one place.

Snakemake's job attributes are not a stable API (see FACTS.md); everything that touches them lives
here and returns plain data (`JobFacts`), so the recorder and runtimes never see Snakemake types.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pox_executor.errors import VerificationError
from pox_executor.provenance.names import record_name
from pox_executor.provenance.recorder import JobFacts, OutputFile

NETWORK_RESOURCE = "pox_network"
# Resource entries that describe the machine, not the job: kept out of the statement.
_VOLATILE_RESOURCES = {"tmpdir", "_nodes", "_cores"}


def _flagged(item: Any, flag: str) -> bool:
    flags = getattr(item, "flags", None) or {}
    return bool(flags.get(flag, False))


def _rel(path: Any, workdir: Path) -> str:
    """The statement name of a job's file (`provenance.names.record_name`).

    A path the rule cannot name (the working directory itself, a name with a newline) keeps its
    text; the recorder then reports it.
    """
    try:
        return record_name(str(path), workdir)
    except (ValueError, VerificationError):
        return str(path)


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


def job_facts(job: Any, workdir: Path, *, formatted_shell: str | None = None) -> JobFacts:
    """Plain facts of one (non-group) Snakemake job. `formatted_shell`: the job's `shell:` as
    `direct_shell_command` formatted it just now, so it is not formatted twice."""
    rule = job.rule
    resources = {k: v for k, v in _named(job.resources).items() if k not in _VOLATILE_RESOURCES}
    network = bool(resources.get(NETWORK_RESOURCE, 0))
    script = getattr(rule, "script", None)
    script_path = _rel(_in_basedir(rule, str(script)), workdir) if script else None
    shell = getattr(rule, "shellcmd", None)
    shell_formatted = None
    if shell and formatted_shell is not None:
        shell_formatted = formatted_shell
    elif shell:
        try:
            # What `shell()` runs (the Snakefile's globals, the module's scope), not Snakemake's
            # display text (`job.shellcmd`), which formats with other names.
            shell_formatted = format_shell(job) if _literal_shell(rule) else str(job.shellcmd)
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
                is_transient=_flagged(f, "pipe") or _flagged(f, "service"),
                is_touch=_flagged(f, "touch"),
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


@dataclass(frozen=True)
class DirectShell:
    """A plain `shell:` job's command, formatted exactly as Snakemake's `shell()` formats it.

    `body` is what Snakemake hands to `executable -c` (process prefix, command, suffix);
    `too_long` says it exceeds one argument's limit, so it must run from a script file as
    Snakemake runs it.
    """

    executable: str
    body: str
    env: dict[str, str]
    formatted: str | None = None  # the rule's `shell:` as formatted, before prefix and suffix

    @property
    def too_long(self) -> bool:
        from snakemake.shell import MAX_ARG_LEN

        limit: int = MAX_ARG_LEN
        return len(self.body.replace("'", r"'\''")) + 2 > limit


def uses_output_cache(job: Any) -> bool:
    """Whether Snakemake's between-workflow output cache (`cache:` with `--cache`) covers `job`."""
    rule = getattr(job, "rule", None)
    cache = getattr(rule, "cache", None)
    settings = rule.workflow.workflow_settings if rule is not None else None
    return bool(cache and cache.output and getattr(settings, "cache", None) is not None)


def _shell_namespace(job: Any) -> dict[str, Any]:
    """The names `shell()` sees inside the rule's generated function (executors/local.py).

    The function's globals are the Snakefile's (or the module's, for module rules); its locals are
    the arguments Snakemake's local executor passes to it, which win over globals.
    """
    rule = job.rule
    variables = dict(getattr(rule.run_func, "__globals__", None) or rule.workflow.globals)
    variables.update(
        input=job.input._plainstrings(),
        output=job.output._plainstrings(),
        params=job.params,
        wildcards=job.wildcards,
        threads=job.threads,
        resources=job.resources,
        log=job.log._plainstrings(),
        rule=rule.name,
        conda_env=None,
        container_img=None,
        singularity_args="",
        use_singularity=False,
        env_modules=None,
        bench_record=None,
        jobid=job.jobid,
        is_shell=True,
        bench_iteration=None,
        cleanup_scripts=True,
        shadow_dir=None,
        edit_notebook=None,
        conda_base_path=None,
        basedir=rule.basedir,
        sourcecache_path=None,
        runtime_sourcecache_path=None,
        runtime_paths=None,
    )
    return variables


def _literal_shell(rule: Any) -> bool:
    """Whether the rule's `shell:` is a string literal, so `rule.shellcmd` is what runs.

    The generated rule function evaluates the directive's expression again when the job runs
    (an f-string, `"..." + config[...]`, a module's deferred `output.txt`); only for a literal is
    the text Snakemake kept at parse time the text `shell()` receives. A literal is a constant of
    the function's code.
    """
    code = getattr(getattr(rule, "run_func", None), "__code__", None)
    return code is not None and any(
        isinstance(c, str) and c == rule.shellcmd for c in code.co_consts
    )


def format_shell(job: Any) -> str:
    """`rule.shellcmd` formatted as Snakemake's `shell()` formats it (snakemake.utils.format)."""
    from snakemake.utils import QuotedFormatter, SequenceFormatter

    formatter = SequenceFormatter(separator=" ")
    formatter.element_formatter = QuotedFormatter(None)
    return str(formatter.format(job.rule.shellcmd, **_shell_namespace(job)))


def direct_shell_command(job: Any) -> DirectShell | None:
    """The command that runs a plain `shell:` job exactly as Snakemake's `shell()` would.

    Re-invoking Snakemake costs 1-2 s per job; a plain shell job needs none of it, nor does an
    action-less rule (its command is `true`). Returns None (use the Snakemake subprocess) for
    anything else: group jobs (pipes and services run as groups), run/script/notebook/wrapper
    rules, shadow, benchmark, conda, containers, environment modules, handover rules, a custom
    `shell_exec`, a `shell:` that is an expression rather than a string literal, and a command
    Snakemake itself would fail to format (the subprocess then reports Snakemake's own error).
    """
    from snakemake.shell import shell

    if job.is_group():
        return None
    executable = shell.get_executable() or "/bin/sh"
    threads_env = dict.fromkeys(_THREAD_ENV, str(job.threads))
    if getattr(job, "is_norun", False):
        # An action-less rule (`rule all: input: ...`) runs nothing; a spawned Snakemake would
        # spend 1-2 s re-reading the workflow to do the same.
        return DirectShell(executable, "true", threads_env)
    rule = job.rule
    if not getattr(rule, "shellcmd", None) or getattr(rule, "is_handover", False):
        return None
    if any(getattr(rule, attr, None) for attr in ("script", "notebook", "wrapper", "cwl")):
        return None
    if _needs_snakemake_around(job):
        return None
    if not _literal_shell(rule):
        return None
    try:
        command = format_shell(job)
    except Exception:
        return None
    body = " ".join((shell._get_process_prefix(executable), command, shell._process_suffix)).strip()
    return DirectShell(executable, body, threads_env, formatted=command)


@dataclass(frozen=True)
class PreparedScript:
    """A Python `script:` job prepared in the main process, as Snakemake's `script()` prepares it.

    `content` is the file Snakemake would write under `.snakemake/scripts/` (its preamble, which
    carries the pickled `snakemake` object, then the script's source); `filename` the script's
    own name, which ends the file's name as in Snakemake. The job then runs only the interpreter
    on that file (`command_for`), as Snakemake's local executor does, instead of a whole
    Snakemake process re-reading the workflow to write the same file (1-3 s per job).
    """

    filename: str
    content: bytes
    executable: str
    env: dict[str, str]

    def command_for(self, path: str) -> str:
        """What `shell()` runs for the script at `path` (relative to the working directory)."""
        import shlex
        import sys

        return f"{shlex.quote(sys.executable)} {shlex.quote(path)}"

    def shell_for(self, path: str) -> DirectShell:
        """The plain shell command that runs the script, formatted as `shell()` wraps it."""
        from snakemake.shell import shell

        command = self.command_for(path)
        body = " ".join(
            (shell._get_process_prefix(self.executable), command, shell._process_suffix)
        )
        return DirectShell(self.executable, body.strip(), self.env)


def _literal_script(rule: Any) -> bool:
    """Whether the rule's `script:` path is a string literal, so `rule.script` is what the
    generated rule function passes to `script()` (see `_literal_shell`)."""
    code = getattr(getattr(rule, "run_func", None), "__code__", None)
    return code is not None and any(isinstance(c, str) and c == rule.script for c in code.co_consts)


def prepared_python_script(job: Any) -> PreparedScript | None:
    """Prepare a local Python `script:` job in this process, exactly as `script()` would.

    Returns None (use the Snakemake subprocess) for anything else: group jobs, other script
    languages, remote scripts, a `script:` that is an expression, notebooks, wrappers, shadow,
    benchmark, conda, containers, environment modules, handover rules, a custom `shell_exec`,
    and any failure of Snakemake's own preparation (the subprocess then reports it).
    """
    if job.is_group() or getattr(job, "is_norun", False):
        return None
    rule = job.rule
    script = getattr(rule, "script", None)
    if not script or not isinstance(script, str) or getattr(rule, "is_handover", False):
        return None
    if getattr(rule, "shellcmd", None):
        return None
    if any(getattr(rule, a, None) for a in ("notebook", "wrapper", "cwl", "template_engine")):
        return None
    if _needs_snakemake_around(job):
        return None
    if not _literal_script(rule):
        return None
    try:
        return _prepare(job, rule, script)
    except Exception:
        return None


def _prepare(job: Any, rule: Any, script: str) -> PreparedScript | None:
    from snakemake.script import PythonScript, get_source
    from snakemake.shell import shell
    from snakemake.sourcecache import LocalSourceFile

    workflow = rule.workflow
    path, source, language, is_local, cache_path = get_source(
        script, workflow.sourcecache, rule.basedir, job.wildcards, job.params
    )
    if language != "python" or not is_local or not isinstance(path, LocalSourceFile):
        return None
    # The arguments the generated rule function passes to `script()` under the local executor.
    config = (getattr(rule.run_func, "__globals__", None) or {}).get("config", workflow.config)
    prepared = PythonScript(
        path,
        cache_path,
        source,
        rule.basedir,
        job.input._plainstrings(),
        job.output._plainstrings(),
        job.params,
        job.wildcards,
        job.threads,
        job.resources,
        job.log._plainstrings(),
        config,
        rule.name,
        None,  # conda_env
        None,  # conda_base_path
        None,  # container_img
        workflow.deployment_settings.apptainer_args,
        None,  # env_modules
        None,  # bench_record
        job.jobid,
        None,  # bench_iteration
        workflow.execution_settings.cleanup_scripts,
        None,  # shadow_dir
        is_local,
        workflow.runtime_paths,
    )
    content = prepared.get_preamble().encode() + source.encode()
    executable = shell.get_executable() or "/bin/sh"
    return PreparedScript(
        filename=path.get_filename(),
        content=content,
        executable=executable,
        env=dict.fromkeys(_THREAD_ENV, str(job.threads)),
    )


def _needs_snakemake_around(job: Any) -> bool:
    """Whether Snakemake's own machinery must wrap the job's action (so no fast path).

    Shadow directories, benchmarks, pipes and services, deployed software environments and a
    custom `shell_exec` are set up by Snakemake around the action. A `conda:` / `container:`
    directive matters only when Snakemake deploys it (`--sdm conda` / `apptainer`); otherwise
    Snakemake's shell() ignores it ("Singularity containers: ignored"), so the job is a plain
    command (the docker backend still runs it in the rule's image, named by JobFacts.container).
    """
    if job.is_shadow or job.benchmark is not None or job.is_pipe or job.is_service:
        return True
    if getattr(job, "conda_env_spec", None) and _deploys(job, "CONDA"):
        return True
    if getattr(job, "container_img_url", None) and _deploys(job, "APPTAINER"):
        return True
    return bool(getattr(job, "env_modules", None)) or job.resources.get("shell_exec") is not None


def _deploys(job: Any, method: str) -> bool:
    """Whether Snakemake deploys software with `method` (a DeploymentMethod name) in this run;
    True when that cannot be told (the job then keeps Snakemake's own subprocess)."""
    workflow = getattr(getattr(job, "dag", None), "workflow", None)
    settings = getattr(workflow, "deployment_settings", None)
    methods = getattr(settings, "deployment_method", None)
    if methods is None:
        return True
    return any(str(getattr(m, "name", m)).upper() == method for m in methods)
