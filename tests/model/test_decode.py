"""Decoding records: Events, EventLists, v1beta1, and a useful reason for every refusal."""

from __future__ import annotations

import json

import pytest

from kubetrail.model import decode_records, normalize
from kubetrail.model.decode import TruncatedRecord
from kubetrail.sources.files import iter_records
from testdata import EDGE_FILES, EVENT_FILES, EVENTLIST_FILE, PARTIAL_FILES, read_json_lines

GOOD = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "a1",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods",
    "verb": "list",
    "user": {"username": "alice", "groups": ["dev"]},
    "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2024-05-01T12:00:00.000001Z",
    "stageTimestamp": "2024-05-01T12:00:00.002001Z",
}


def _line(**changes: object) -> bytes:
    event = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    return json.dumps(event).encode()


def _decode(*lines: bytes):
    return decode_records(list(enumerate(lines, start=1)), "test.jsonl")


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_every_real_event_decodes(path):
    chunk = decode_records(iter_records(path), str(path))
    assert chunk.rejections == []
    assert len(chunk.heads) == len(read_json_lines(path))


@pytest.mark.parametrize("path", PARTIAL_FILES + EDGE_FILES, ids=lambda p: p.name)
def test_partial_and_edge_records_are_refused_one_by_one(path):
    chunk = decode_records(iter_records(path), str(path))
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    assert chunk.heads == []
    assert [r.line for r in chunk.rejections] == lines
    for rejection in chunk.rejections:
        assert rejection.source == str(path)
        assert rejection.reason and rejection.detail


def test_eventlist_lines_give_one_event_per_item_with_an_envelope():
    chunk = decode_records(iter_records(EVENTLIST_FILE), "list")
    lists = read_json_lines(EVENTLIST_FILE)
    assert len(chunk.heads) == sum(len(doc["items"]) for doc in lists)
    first = json.loads(chunk.raws[0])
    assert first["kind"] == "Event" and first["apiVersion"] == "audit.k8s.io/v1"
    assert {k: v for k, v in first.items() if k not in ("kind", "apiVersion")} == {
        k: v for k, v in lists[0]["items"][0].items() if k not in ("kind", "apiVersion")
    }
    assert chunk.positions[1] == (1, 1)


def test_bad_item_of_an_eventlist_does_not_stop_the_others():
    items = [dict(GOOD, auditID="x1"), {"auditID": "x2"}, dict(GOOD, auditID="x3")]
    for item in items:
        item.pop("kind", None)
        item.pop("apiVersion", None)
    doc = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
    chunk = _decode(json.dumps(doc).encode())
    assert [h.auditID for h in chunk.heads] == ["x1", "x3"]
    [rejection] = chunk.rejections
    assert (rejection.line, rejection.index) == (1, 1)
    assert rejection.reason == "missing required field 'stage'"


def test_items_of_a_v1beta1_eventlist_keep_the_lists_version():
    item = {k: v for k, v in GOOD.items() if k not in ("kind", "apiVersion")}
    doc = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": [item]}
    chunk = _decode(json.dumps(doc).encode())
    [head] = chunk.heads
    assert head.apiVersion == "audit.k8s.io/v1beta1"
    assert json.loads(chunk.raws[0])["apiVersion"] == "audit.k8s.io/v1beta1"
    table = normalize(chunk, cluster="c", source="t", batch_id="b").table
    assert table.column("event_version").to_pylist() == ["audit.k8s.io/v1beta1"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "invalid JSON"),
        (b'{"kind": "Event", ', "invalid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (_line(kind=None), "missing required field 'kind'"),
        (_line(kind="Pod"), "unknown kind"),
        (_line(apiVersion=None), "missing required field 'apiVersion'"),
        (_line(apiVersion="audit.k8s.io/v2"), "unknown apiVersion"),
        (_line(auditID=None), "missing required field 'auditID'"),
        (_line(auditID=""), "missing required field 'auditID'"),
        (_line(stage=None), "missing required field 'stage'"),
        (_line(verb=None), "missing required field 'verb'"),
        (_line(requestURI=None), "missing required field 'requestURI'"),
        (
            _line(requestReceivedTimestamp=None, stageTimestamp=None),
            "missing timestamp",
        ),
        (_line(stage="Done"), "unknown stage"),
        (_line(level="Everything"), "unknown level"),
        (_line(verb="calebiscool"), "unknown verb"),
        (_line(requestURI="/healthz"), "objectRef on a non-resource path"),
        (
            _line(objectRef={"resource": "nerds"}, requestURI="/api/v1/nerds"),
            "unknown core resource",
        ),
        (_line(verb=7), "field of the wrong type"),
        (_line(user={"username": ["a"]}), "field of the wrong type"),
    ],
)
def test_refusal_reasons(line, reason):
    chunk = _decode(_line(auditID="ok"), line)
    assert [h.auditID for h in chunk.heads] == ["ok"]
    [rejection] = chunk.rejections
    assert rejection.reason == reason
    assert rejection.line == 2
    assert str(rejection.as_error()).startswith("test.jsonl:2: ")


def test_unknown_fields_are_kept_in_the_raw_event():
    chunk = _decode(_line(futureField={"x": [1, 2]}))
    assert json.loads(chunk.raws[0])["futureField"] == {"x": [1, 2]}


def test_non_resource_requests_take_any_lower_case_http_method():
    line = _line(objectRef=None, requestURI="/healthz", verb="propfind")
    assert _decode(line).rejections == []
    assert _decode(_line(objectRef=None, requestURI="/x", verb="GET")).rejections[0].reason == (
        "unknown verb"
    )


def test_v1beta1_timestamp_alone_is_enough():
    line = _line(
        apiVersion="audit.k8s.io/v1beta1",
        requestReceivedTimestamp=None,
        stageTimestamp=None,
        timestamp="2017-09-11T19:55:05Z",
    )
    assert _decode(line).rejections == []


def test_truncated_record_is_refused_with_its_size():
    chunk = _decode(TruncatedRecord(b'{"kind":"Ev', 99_000_000))
    [rejection] = chunk.rejections
    assert rejection.reason == "record too large"
    assert "99000000" in rejection.detail


def test_json_nested_beyond_the_decoders_depth_is_one_refused_record():
    deep = b'{"kind":"Event","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    chunk = _decode(deep, _line(auditID="next"))
    assert [r.reason for r in chunk.rejections] == ["nested too deeply"]
    assert [h.auditID for h in chunk.heads] == ["next"]
