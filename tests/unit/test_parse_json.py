"""parse_json: duplicate keys are found exactly on both paths (orjson fast path, stdlib with escapes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.body import gunzip_capped
from serving.validation import DUPLICATE_KEY, MALFORMED_JSON, MAX_JSON_DEPTH, NESTING_TOO_DEEP, RequestError, json_depth, parse_json

text = st.text(st.characters(codec="utf-8"), max_size=6) | st.sampled_from([":", "a:b", '"', "\\", "\u003a", "é"])
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63 - 1) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_without_duplicates_parses_to_itself(value: Any, ascii_only: bool) -> None:
    assert parse_json(json.dumps(value, ensure_ascii=ascii_only).encode()) == value


def _with_duplicate(obj: dict[str, Any], key: str) -> bytes:
    inner = json.dumps(obj)[1:-1]
    return ("{" + json.dumps(key) + ": 0" + (", " + inner if inner else "") + ", " + json.dumps(key) + ": 1}").encode()


@settings(max_examples=300, deadline=None)
@given(obj=st.dictionaries(text, json_values, max_size=4), key=text, depth=st.integers(0, 3))
def test_a_repeated_key_at_any_depth_is_refused(obj: dict[str, Any], key: str, depth: int) -> None:
    raw = _with_duplicate(obj, key)
    for _ in range(depth):
        raw = b'{"instances": [' + raw + b"]}"
    with pytest.raises(RequestError) as err:
        parse_json(raw)
    assert err.value.reason == DUPLICATE_KEY


@pytest.mark.parametrize("raw", [b'{"a": 1,', b"\xff\xfe", b"", b"[" * 100_000])
def test_malformed_json_is_a_400_reason(raw: bytes) -> None:
    with pytest.raises(RequestError) as err:
        parse_json(raw)
    assert err.value.reason == MALFORMED_JSON


def test_gzip_is_decompressed_up_to_the_cap_and_no_further() -> None:
    import gzip

    data = b"x" * 1000
    assert gunzip_capped(gzip.compress(data), 1000) == data
    assert gunzip_capped(gzip.compress(data[:400]) + gzip.compress(data[400:]), 1000) == data
    with pytest.raises(RequestError) as err:
        gunzip_capped(gzip.compress(data), 999)
    assert err.value.reason == "body_too_large"


def _depth(value: Any) -> int:
    if isinstance(value, dict | list):
        return 1 + max(map(_depth, value.values() if isinstance(value, dict) else value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), wraps=st.integers(0, 80))
def test_the_depth_read_from_the_bytes_is_the_parsed_values_depth(value: Any, ascii_only: bool, wraps: int) -> None:
    raw = "[" * wraps + json.dumps(value, ensure_ascii=ascii_only) + "]" * wraps
    assert json_depth(raw.encode()) == _depth(json.loads(raw))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 255, 1024, 1025, 5000])
def test_nesting_past_the_limit_is_refused_before_parsing(depth: int) -> None:
    with pytest.raises(RequestError) as err:
        parse_json(b"[" * depth + b"]" * depth)
    assert err.value.reason == NESTING_TOO_DEEP
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
