"""`snakemake --config` overrides: recorded by value in the signed session opening, withheld
(digest only) when the key looks like a secret, given back to Snakemake unchanged by `pox
reproduce`, and covered by the opening's signature (a changed value fails `pox verify`).

The end-to-end replay (a real Snakemake run with `--config`, reproduced identically) is
`test_reproduce_a_run_and_its_crate` in test_diff_reproduce.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from recorded import record_run, statement_of
from snakemake.cli import parse_config

from pox_executor.audit.verify import verify_run
from pox_executor.errors import UsageError, VerificationError
from pox_executor.provenance.config_overrides import (
    WITHHELD_REASON,
    config_arguments,
    parse_recorded,
    record_overrides,
    value_sha256,
)
from pox_executor.provenance.records import SessionOpen, read_entries

# what Snakemake's own --config parser makes of command-line values
COMMAND_LINE = [
    "threads=4",
    "ratio=0.25",
    "flag=True",
    "name=sample one",
    "quoted=!!str 7",
    "empty=",
    "items=[a, 2]",
    "nested={x: 1, y: [p]}",
    "tricky=it's: {not} [yaml",
]


def test_every_kind_of_value_is_replayed_to_the_same_parsed_value() -> None:
    parsed = parse_config(COMMAND_LINE)
    recorded = record_overrides(parsed)
    assert recorded["threads"] == {"value": 4} and recorded["quoted"] == {"value": "7"}
    arguments = config_arguments(recorded, {})
    assert json.loads(json.dumps(parse_config(arguments))) == json.loads(json.dumps(parsed))
    assert config_arguments({"word": {"value": "True"}}, {}) == ["word=!!str True"]
    with pytest.raises(UsageError, match="cannot be given back to snakemake --config unchanged"):
        config_arguments({"lead": {"value": " x"}}, {})


def test_secret_looking_keys_keep_only_a_digest_and_must_be_given_back() -> None:
    recorded = record_overrides(parse_config(["api_token=s3cret", "DB_PASSWORD=pw", "kk=v"]))
    assert recorded["kk"] == {"value": "v"}
    assert record_overrides({"author": "Ada", "AWS_ACCESS_KEY": "x"}) == {
        "AWS_ACCESS_KEY": {"sha256": value_sha256("x"), "withheld": WITHHELD_REASON},
        "author": {"value": "Ada"},
    }
    assert "s3cret" not in json.dumps(recorded) and "pw" not in json.dumps(recorded)
    assert recorded["api_token"]["sha256"] == value_sha256("s3cret")
    with pytest.raises(UsageError) as missing:
        config_arguments(recorded, {"DB_PASSWORD": "pw"})
    assert "api_token: the key looks like a secret" in str(missing.value)
    assert "give it with --config api_token=VALUE" in str(missing.value)
    with pytest.raises(UsageError, match="api_token: the value given does not have the recorded"):
        config_arguments(recorded, {"api_token": "guess", "DB_PASSWORD": "pw"})
    with pytest.raises(UsageError, match="kk: its value was recorded; it cannot be replaced"):
        config_arguments(recorded, {"api_token": "s3cret", "DB_PASSWORD": "pw", "kk": "w"})
    with pytest.raises(UsageError, match="--config other: the recorded run has no such override"):
        config_arguments(recorded, {"api_token": "s3cret", "DB_PASSWORD": "pw", "other": "1"})
    arguments = config_arguments(recorded, {"api_token": "s3cret", "DB_PASSWORD": "pw"})
    assert sorted(arguments) == ["DB_PASSWORD=pw", "api_token=s3cret", "kk=v"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1], "must be an object or null"),
        ({"k": 3}, "expected an object with 'value' or 'sha256'"),
        ({"k": {"sha256": "zz"}}, "expected 'value', or 'sha256' as 64 hex digits"),
    ],
)
def test_malformed_recorded_overrides_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        parse_recorded(raw, where="line 1.predicate")
    assert parse_recorded(None, where="line 1.predicate") is None  # recorded before the field


def opening_of(path: Path) -> SessionOpen:
    first = read_entries(path)[0]
    assert isinstance(first, SessionOpen)
    return first


def test_overrides_are_in_the_signed_opening_and_a_changed_value_fails_verify(
    tmp_path: Path,
) -> None:
    run = record_run(tmp_path / "w", config_overrides={"sep": "++", "api_token": "s3cret"})
    log = run.bundle.attestations_path
    assert b"s3cret" not in log.read_bytes()
    opening = opening_of(log)
    assert opening.config_overrides is not None
    assert opening.config_overrides["sep"] == {"value": "++"}
    assert set(opening.config_overrides["api_token"]) == {"sha256", "withheld"}
    assert verify_run(run.bundle, allow_simulated=True).ok

    lines = log.read_bytes().splitlines(keepends=True)
    envelope = json.loads(lines[0])
    statement = statement_of(lines[0])
    statement["predicate"]["config_overrides"]["sep"] = {"value": "--"}
    envelope["payload"] = base64.b64encode(
        json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    lines[0] = json.dumps(envelope).encode() + b"\n"
    log.write_bytes(b"".join(lines))
    assert opening_of(log).config_overrides == {**opening.config_overrides, "sep": {"value": "--"}}
    report = verify_run(run.bundle, allow_simulated=True)
    assert not report.ok
    messages = [(f.check, f.message) for f in report.errors]
    assert any(
        check == "session-open" and "not signed by the key it introduces" in message
        for check, message in messages
    ), messages


def test_a_run_recorded_without_the_field_still_reads(tmp_path: Path) -> None:
    run = record_run(tmp_path / "w")
    assert b"config_overrides" not in run.bundle.attestations_path.read_bytes()
    assert opening_of(run.bundle.attestations_path).config_overrides is None
    assert verify_run(run.bundle, allow_simulated=True).ok
