"""The environment variables a job receives: the host's, minus secrets, plus the job's own.

Ordinary exported variables pass as with Snakemake's local executor. Dropped unless the rule
names them with `envvars:` (`JobSpec.env_passthrough`): PoX's own variables (`POX_*`,
`SNAKEMAKE_POX_*`), names ending in `_PASSPHRASE`, `_TOKEN`, `_SECRET`, `_PASSWORD`, `_PASSWD`,
`_KEY`, `_CREDENTIALS`, `_APIKEY`, and cloud credentials (`AWS_*`, `AZURE_*`, `GOOGLE_*`,
`GCLOUD_*`, `CLOUDSDK_*`, `ALIBABA_CLOUD_*`, `OCI_*`, `OS_*` of OpenStack). Only the names of what
passed are recorded, never the values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

SECRET_PREFIXES = (
    "POX_",
    "SNAKEMAKE_POX_",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
    "ALIBABA_CLOUD_",
    "OCI_",
    "OS_",
)
SECRET_SUFFIXES = (
    "_PASSPHRASE",
    "_TOKEN",
    "_SECRET",
    "_PASSWORD",
    "_PASSWD",
    "_KEY",
    "_CREDENTIALS",
    "_APIKEY",
)


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a variable of this name is kept from jobs unless declared with `envvars:`."""
    upper = name.upper()
    return upper.startswith(SECRET_PREFIXES) or upper.endswith(SECRET_SUFFIXES)


def job_environment(
    host: Mapping[str, str],
    *,
    passthrough: Iterable[str] = (),
    job: Mapping[str, str] | None = None,
    sandbox: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The job's environment and the sorted names of the host variables it received.

    `job`: variables the executor sets for this job (threads); `sandbox`: set by the runtime
    (TMPDIR, HOME), overriding everything; `unset`: host variables that make no sense inside.
    """
    declared = set(passthrough)
    removed = set(unset)
    env = {
        k: v
        for k, v in host.items()
        if k not in removed and (k in declared or not is_secret_name(k))
    }
    set_here = {**(job or {}), **(sandbox or {})}
    env.update(set_here)
    passed = tuple(sorted(k for k in env if k in host and k not in set_here))
    return env, passed
