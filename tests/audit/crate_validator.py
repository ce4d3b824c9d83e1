"""Run `rocrate-validator` offline against the Provenance Run Crate profile, as CI does.

The validator fetches the RO-Crate JSON-LD context over HTTP; offline it cannot, skips checks and
reports failure. `seed_context_cache` fills a fresh requests-cache database with the context
document ro-crate-py ships (`rocrate/data/ro-crate.jsonld`), served for the context URL, so the
validator runs every check with no network. `validate` runs the real CLI and returns its JSON.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Provenance Run Crate 0.5 binds RO-Crate 1.1; no installed package ships the 1.1 context, so the
# 1.3 one ro-crate-py ships answers for it. They map the schema.org terms alike; the terms whose
# IRIs differ (the bioschemas types) or that 1.1 lacks, our crates define inline
# (`export.CONTEXT_TERMS`), so the expansion is the one the 1.1 context gives.
CONTEXT_URLS = ("https://w3id.org/ro/crate/1.1/context", "https://w3id.org/ro/crate/1.3/context")


def seed_context_cache(cache_path: Path) -> Path:
    """A requests-cache (sqlite) at `cache_path` answering the context URLs from the local file."""
    import requests
    import requests_cache
    import rocrate
    import urllib3

    context = (Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_bytes()
    session = requests_cache.CachedSession(
        cache_name=str(cache_path), backend="sqlite", allowable_codes=(200,)
    )
    for url in CONTEXT_URLS:
        response = requests.Response()
        response.status_code = 200
        response._content = context
        response.url = url
        response.headers["Content-Type"] = "application/ld+json"
        response.request = requests.Request("GET", url).prepare()
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(context),
            headers={"Content-Type": "application/ld+json"},
            status=200,
            preload_content=False,
            request_url=url,
        )
        response.encoding = "utf-8"
        session.cache.save_response(response)
    session.close()
    return cache_path


def validate(crate: Path, cache_path: Path) -> dict[str, Any]:
    """`rocrate-validator validate CRATE -p provenance-run-crate --requirement-severity REQUIRED
    --offline`, with the seeded cache; the parsed JSON report."""
    tool = shutil.which("rocrate-validator") or str(
        Path(sys.executable).with_name("rocrate-validator")
    )
    result = subprocess.run(
        [
            tool,
            "validate",
            str(crate),
            "-p",
            "provenance-run-crate",
            "--requirement-severity",
            "REQUIRED",
            "--offline",
            "--cache-path",
            str(cache_path),
            "--no-paging",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(
            f"rocrate-validator printed no JSON (exit {result.returncode}): "
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        ) from exc
    return report
