"""The nesting guard of the log reader (`records.json_depth_exceeds`, `load_json`): hostile deep
JSON is refused before CPython's parser sees it, brackets inside strings never count, and the
cheap pre-count never lets deep text through."""

from __future__ import annotations

import json

import pytest

from pox_executor.errors import VerificationError
from pox_executor.provenance.records import MAX_JSON_DEPTH, json_depth_exceeds, load_json


def nested(depth: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    ("text", "exceeds"),
    [
        (nested(MAX_JSON_DEPTH), False),
        (nested(MAX_JSON_DEPTH + 1), True),
        (nested_objects(MAX_JSON_DEPTH), False),
        (nested_objects(MAX_JSON_DEPTH + 1), True),
        # many brackets, little depth: the pre-count passes them on to the exact scan
        (b"[" + b",".join([b"[]"] * 5000) + b"]", False),
        # brackets inside strings, escaped quotes and backslashes included, do not count
        (json.dumps(["[" * 5000, '\\"{' * 3000, "\\" * 7 + "[[["]).encode(), False),
        # ... but a string that ends cannot hide the real nesting after it
        (b'["\\\\"' + b"," + nested(MAX_JSON_DEPTH + 1) + b"]", True),
        (b'["[[[[\\"]]"' + b"," + nested(MAX_JSON_DEPTH) + b"]", True),
        # a newline escaped in a string (invalid JSON) does not shift string boundaries
        (b'["\\\n", ' + nested(MAX_JSON_DEPTH + 1) + b"]", True),
    ],
)
def test_depth_is_exact(text: bytes, exceeds: bool) -> None:
    assert json_depth_exceeds(text) is exceeds


def test_deep_text_is_refused_with_the_place_named() -> None:
    with pytest.raises(VerificationError, match=r"line 7: JSON nested deeper than 200 levels"):
        load_json(nested(100_000), where="line 7")
    assert load_json(nested(MAX_JSON_DEPTH), where="line 7") is not None


def test_strings_full_of_brackets_still_parse() -> None:
    value = {"k": "[{" * 10_000, "list": [["x"]]}
    assert load_json(json.dumps(value), where="payload") == value
