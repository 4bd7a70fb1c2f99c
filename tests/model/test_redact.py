"""Redaction: no Secret value (or token) reaches the store; keys and everything else stay."""

from __future__ import annotations

import json

from kubetrail.model import decode_records
from kubetrail.model.redact import LAST_APPLIED, REDACTED, redact_event
from kubetrail.sources.files import iter_records
from testdata import EVENTS


def _event(resource: str, body_key: str, body: object) -> dict:
    return {
        "objectRef": {"resource": resource, "namespace": "ns", "name": "s"},
        body_key: body,
    }


def test_secret_object_values_go_keys_stay():
    secret = {"kind": "Secret", "data": {"a": "c2VjcmV0"}, "stringData": {"b": "plain"}}
    event = _event("secrets", "requestObject", secret)
    assert redact_event(event)
    assert event["requestObject"]["data"] == {"a": REDACTED}
    assert event["requestObject"]["stringData"] == {"b": REDACTED}


def test_secret_list_response_items():
    body = {
        "kind": "SecretList",
        "items": [{"metadata": {"name": "a"}, "data": {"k": "dg=="}}, {"data": {"j": "dw=="}}],
    }
    event = _event("secrets", "responseObject", body)
    assert redact_event(event)
    assert [i["data"] for i in event["responseObject"]["items"]] == [
        {"k": REDACTED},
        {"j": REDACTED},
    ]


def test_last_applied_annotation_is_redacted_inside():
    applied = json.dumps({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}})
    secret = {"kind": "Secret", "metadata": {"annotations": {LAST_APPLIED: applied}}, "data": {}}
    event = _event("secrets", "responseObject", secret)
    assert redact_event(event)
    inner = json.loads(event["responseObject"]["metadata"]["annotations"][LAST_APPLIED])
    assert inner == {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": REDACTED}}


def test_unreadable_last_applied_annotation_is_dropped_whole():
    secret = {"kind": "Secret", "metadata": {"annotations": {LAST_APPLIED: "{not json"}}}
    event = _event("secrets", "requestObject", secret)
    assert redact_event(event)
    assert event["requestObject"]["metadata"]["annotations"][LAST_APPLIED] == REDACTED


def test_merge_patch_and_json_patch_on_secrets():
    merge = _event("secrets", "requestObject", {"data": {"password": "aHVudGVyMg=="}})
    assert redact_event(merge)
    assert merge["requestObject"] == {"data": {"password": REDACTED}}
    ops = [
        {"op": "replace", "path": "/data/password", "value": "aHVudGVyMg=="},
        {"op": "add", "path": "/stringData", "value": {"k": "v"}},
        {"op": "replace", "path": "/metadata/labels/x", "value": "keep"},
    ]
    patch = _event("secrets", "requestObject", ops)
    assert redact_event(patch)
    assert [op["value"] for op in patch["requestObject"]] == [REDACTED, {"k": REDACTED}, "keep"]


def test_secrets_nested_in_other_objects_and_tokens():
    listing = {"kind": "List", "items": [{"kind": "Secret", "data": {"k": "dg=="}}]}
    event = _event("configmaps", "requestObject", listing)
    assert redact_event(event)
    assert event["requestObject"]["items"][0]["data"] == {"k": REDACTED}
    review = {"kind": "TokenReview", "spec": {"token": "eyJhbGciOi"}}
    event = _event("tokenreviews", "requestObject", review)
    assert redact_event(event)
    assert event["requestObject"]["spec"]["token"] == REDACTED
    request = {"kind": "TokenRequest", "status": {"token": "eyJ", "expirationTimestamp": "x"}}
    event = _event("serviceaccounts", "responseObject", request)
    assert redact_event(event)
    assert event["responseObject"]["status"] == {"token": REDACTED, "expirationTimestamp": "x"}


def test_configmaps_are_untouched():
    event = _event("configmaps", "requestObject", {"kind": "ConfigMap", "data": {"k": "v"}})
    assert not redact_event(event)
    assert event["requestObject"]["data"] == {"k": "v"}


def test_real_secret_events_are_stored_without_values():
    path = EVENTS / "falco-k8s-audit-traces.jsonl"
    chunk = decode_records(iter_records(path), str(path))
    redacted = [
        json.loads(raw) for raw, flag in zip(chunk.raws, chunk.redacted, strict=True) if flag
    ]
    assert redacted, "the Falco traces hold a Secret create with values"
    for event in redacted:
        for key in ("requestObject", "responseObject"):
            data = event.get(key, {}).get("data", {})
            assert data and set(data.values()) == {REDACTED}
    original = path.read_text()
    assert "ca.crt" in original
    for raw in chunk.raws:
        # No base64 value of the original Secret survives anywhere in what would be stored.
        for line in original.splitlines():
            source = json.loads(line)
            for key in ("requestObject", "responseObject"):
                for value in (source.get(key) or {}).get("data", {}).values():
                    assert value.encode() not in raw


def test_redaction_can_be_turned_off():
    secret = {"kind": "Secret", "data": {"a": "c2VjcmV0"}}
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": "1",
        "stage": "ResponseComplete",
        "verb": "create",
        "requestURI": "/api/v1/namespaces/n/secrets",
        "objectRef": {"resource": "secrets", "namespace": "n"},
        "requestReceivedTimestamp": "2024-01-01T00:00:00Z",
        "requestObject": secret,
    }
    line = json.dumps(event).encode()
    kept = decode_records([(1, line)], "t", redact=False)
    assert b"c2VjcmV0" in kept.raws[0] and kept.redacted == [False]
    dropped = decode_records([(1, line)], "t")
    assert b"c2VjcmV0" not in dropped.raws[0] and dropped.redacted == [True]


def test_quarantined_records_are_redacted_too():
    bad = json.dumps(
        {
            "kind": "Event",
            "objectRef": {"resource": "secrets"},
            "requestObject": {"kind": "Secret", "data": {"k": "c2VjcmV0"}},
        }
    ).encode()
    chunk = decode_records([(1, bad), (2, bad[:-10])], "t")
    assert len(chunk.rejections) == 2
    assert all(b"c2VjcmV0" not in r.raw for r in chunk.rejections)
