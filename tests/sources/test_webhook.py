"""Webhook bodies: content types, gzip with a bound, EventList / Event / array / JSON lines."""

from __future__ import annotations

import gzip

import pytest

from kubetrail.sources.webhook import BodyError, check_content_type, decode_body, parse_body


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "application/x-ndjson",
        "APPLICATION/JSONL",
    ],
)
def test_accepted_content_types(value: str | None) -> None:
    check_content_type(value)


@pytest.mark.parametrize("value", ["text/plain", "application/xml", "multipart/form-data"])
def test_refused_content_types(value: str) -> None:
    with pytest.raises(BodyError) as info:
        check_content_type(value)
    assert info.value.status == 415


def test_gzip_and_its_limits() -> None:
    data = b'{"kind":"EventList","items":[]}'
    assert decode_body(gzip.compress(data), "gzip", 1000) == data
    assert decode_body(data, None, 10) == data  # the bound is for decompression only
    with pytest.raises(BodyError) as info:
        decode_body(gzip.compress(b" " * 5000), "gzip", 1000)
    assert info.value.status == 413
    with pytest.raises(BodyError) as info:
        decode_body(gzip.compress(data)[:-8], "gzip", 1000)
    assert info.value.status == 400
    with pytest.raises(BodyError) as info:
        decode_body(data, "br", 1000)
    assert info.value.status == 415


def test_documents_arrays_and_lines() -> None:
    eventlist = b'{"kind":"EventList","items":[{"a":1},{"b":2}]}'
    assert parse_body(eventlist).records == [(None, eventlist)]
    assert parse_body(b"  " + eventlist + b"\n").lines is False
    pretty = b'{\n  "kind": "Event",\n  "verb": "get"\n}\n'
    assert parse_body(pretty).records == [(None, pretty.strip())]
    array = parse_body(b'[{"a":1}, {"b":2}]')
    assert array.lines and array.records == [(1, b'{"a":1}'), (2, b'{"b":2}')]
    lines = parse_body(b'{"a":1}\n\n{"b":2}\r\n{broken\n')
    assert lines.lines and lines.records == [(1, b'{"a":1}'), (2, b'{"b":2}'), (3, b"{broken")]


@pytest.mark.parametrize("body", [b"", b"   \n", b"hello", b"{nope", b"{x\n{y\n", b"<xml/>"])
def test_unparseable_bodies(body: bytes) -> None:
    with pytest.raises(BodyError) as info:
        parse_body(body)
    assert info.value.status == 400


def test_deeply_nested_json_is_refused_not_crashed() -> None:
    deep = b'{"kind":"Event","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BodyError) as info:
        parse_body(deep)
    assert info.value.status == 400 and "nested" in info.value.message
