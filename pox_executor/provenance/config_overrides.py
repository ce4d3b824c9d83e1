"""The command-line config overrides of a run (`snakemake --config KEY=VALUE ...`), as recorded.

Owns the recorded form (the `config_overrides` field of a session's signed opening,
docs/formats.md), withholding values whose key looks like a secret, reading the field back, and
turning recorded values back into `--config` arguments that Snakemake parses to the same values.

Recorded form: `{KEY: {"value": VALUE}}`, VALUE as Snakemake parsed it (int, float, bool, null,
string, or lists/objects of strings); a key that looks like a secret (`SECRET_KEY_PATTERN`) is
recorded as `{KEY: {"sha256": HEX, "withheld": REASON}}`, HEX the SHA-256 of VALUE's RFC 8785
canonical JSON, so a reproduction must be given the value again and can check it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

from pox_executor.errors import UsageError, VerificationError

SECRET_KEY_PATTERN = re.compile(
    r"secret|token|passw|pwd|(api|private|access)[_-]?key|credential|auth(?!or)|cookie"
    r"|session[_-]?key",
    re.IGNORECASE,
)
WITHHELD_REASON = "the key looks like a secret: only the value's SHA-256 is recorded"

__all__ = [
    "SECRET_KEY_PATTERN",
    "config_arguments",
    "parse_recorded",
    "record_overrides",
    "value_sha256",
]


def value_sha256(value: Any) -> str:
    """SHA-256 of a config value's RFC 8785 canonical JSON."""
    return hashlib.sha256(rfc8785.dumps(_jsonable(value))).hexdigest()


def _jsonable(value: Any) -> Any:
    # Snakemake's --config parser yields JSON types; anything else is recorded as its text.
    return json.loads(json.dumps(value, default=str))


def record_overrides(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The recorded form of `--config` overrides; secret-looking keys keep only a digest."""
    recorded: dict[str, dict[str, Any]] = {}
    for key in sorted(overrides):
        value = _jsonable(overrides[key])
        if SECRET_KEY_PATTERN.search(key):
            recorded[key] = {"sha256": value_sha256(value), "withheld": WITHHELD_REASON}
        else:
            recorded[key] = {"value": value}
    return recorded


def parse_recorded(raw: Any, *, where: str) -> dict[str, dict[str, Any]] | None:
    """The `config_overrides` field read back (None: recorded before the field existed)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise VerificationError(f"{where}: field 'config_overrides' must be an object or null")
    parsed: dict[str, dict[str, Any]] = {}
    for key, item in raw.items():
        at = f"{where}.config_overrides[{key!r}]"
        if not isinstance(item, Mapping):
            raise VerificationError(f"{at}: expected an object with 'value' or 'sha256'")
        if "value" in item:
            parsed[key] = {"value": item["value"]}
        elif isinstance(item.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", item["sha256"]):
            parsed[key] = {"sha256": item["sha256"], "withheld": str(item.get("withheld", ""))}
        else:
            raise VerificationError(f"{at}: expected 'value', or 'sha256' as 64 hex digits")
    return parsed


def _parse_like_snakemake(argument: str) -> Any:
    from snakemake.cli import parse_config

    try:
        return next(iter(parse_config([argument]).values()))
    except ValueError as exc:  # a key Snakemake would not accept either
        raise UsageError(f"--config {argument.partition('=')[0]}: {exc}") from None


def _argument_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)  # flow YAML, which Snakemake reads back as strings


def config_arguments(
    recorded: Mapping[str, Mapping[str, Any]], supplied: Mapping[str, str]
) -> list[str]:
    """`KEY=VALUE` arguments for `snakemake --config` that reproduce the recorded values.

    `supplied` (from `pox reproduce --config KEY=VALUE`) gives withheld values, each checked
    against its recorded digest. UsageError names every key that cannot be replayed exactly.
    """
    arguments: list[str] = []
    problems: list[str] = []
    unknown = sorted(set(supplied) - set(recorded))
    if unknown:
        problems.append(
            f"--config {', '.join(unknown)}: the recorded run has no such override "
            "(only withheld values can be given)"
        )
    for key, item in sorted(recorded.items()):
        if "value" in item:
            if key in supplied:
                problems.append(f"--config {key}: its value was recorded; it cannot be replaced")
                continue
            value = item["value"]
            text = _argument_text(value)
            if _jsonable(_parse_like_snakemake(f"{key}={text}")) != value:
                text = f"!!str {value}"  # YAML's tag keeps "7" or "True" a string
            if _jsonable(_parse_like_snakemake(f"{key}={text}")) != value:
                problems.append(
                    f"config override {key}: its recorded value {value!r} cannot be given back "
                    "to snakemake --config unchanged"
                )
                continue
            arguments.append(f"{key}={text}")
        elif key not in supplied:
            problems.append(
                f"config override {key}: {item.get('withheld') or 'withheld'}; "
                f"give it with --config {key}=VALUE"
            )
        else:
            value = _jsonable(_parse_like_snakemake(f"{key}={supplied[key]}"))
            if value_sha256(value) != item["sha256"]:
                problems.append(
                    f"--config {key}: the value given does not have the recorded SHA-256 "
                    f"{str(item['sha256'])[:16]}..."
                )
                continue
            arguments.append(f"{key}={supplied[key]}")
    if problems:
        raise UsageError("; ".join(problems))
    return arguments
