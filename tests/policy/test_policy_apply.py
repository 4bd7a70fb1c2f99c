"""Applying a decision to an event (reference a.6): bodies, omitted stages, managedFields."""

from __future__ import annotations

import copy
from typing import Any

from kubetrail.policy.apply import apply_decision, apply_level
from kubetrail.policy.evaluate import Decision
from kubetrail.policy.loader import load_policy

MF = [{"manager": "kubectl", "operation": "Update"}]


def event(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "a1",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/ns/configmaps",
        "verb": "create",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "objectRef": {"resource": "configmaps", "namespace": "ns", "name": "c", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {
            "kind": "ConfigMap",
            "metadata": {"name": "c", "managedFields": MF},
            "data": {"k": "v"},
        },
        "responseObject": {
            "kind": "ConfigMap",
            "metadata": {"name": "c", "managedFields": MF},
            "data": {"k": "v"},
        },
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "patch.webhook.admission.k8s.io/round_0_index_0": "{}",
        },
    }
    base.update(kw)
    return base


def d(level: str, omit: frozenset[str] = frozenset(), omf: bool = False) -> Decision:
    return Decision(level, 0, omit, omf)


def test_metadata_drops_both_bodies_and_request_level_annotations() -> None:
    out = apply_decision(event(), d("Metadata"))
    assert out is not None
    assert "requestObject" not in out and "responseObject" not in out
    assert out["level"] == "Metadata"
    assert out["annotations"] == {"authorization.k8s.io/decision": "allow"}
    assert out["responseStatus"] == {"metadata": {}, "code": 201}


def test_request_keeps_request_object_only() -> None:
    out = apply_decision(event(), d("Request"))
    assert out is not None and "requestObject" in out and "responseObject" not in out
    assert "patch.webhook.admission.k8s.io/round_0_index_0" in out["annotations"]


def test_request_response_keeps_both() -> None:
    out = apply_decision(event(), d("RequestResponse"))
    assert out is not None and "requestObject" in out and "responseObject" in out


def test_none_and_omitted_stage_drop() -> None:
    assert apply_decision(event(), d("None")) is None
    assert (
        apply_decision(
            event(stage="RequestReceived"), d("Metadata", frozenset({"RequestReceived"}))
        )
        is None
    )
    assert (
        apply_decision(
            event(stage="ResponseComplete"), d("Metadata", frozenset({"RequestReceived"}))
        )
        is not None
    )


def test_managed_fields_removed_not_mutating_input() -> None:
    ev = event()
    before = copy.deepcopy(ev)
    out = apply_decision(ev, d("RequestResponse", omf=True))
    assert out is not None
    assert "managedFields" not in out["requestObject"]["metadata"]
    assert "managedFields" not in out["responseObject"]["metadata"]
    assert ev == before


def test_managed_fields_removed_from_list_items_and_tables() -> None:
    lst = {
        "kind": "ConfigMapList",
        "metadata": {},
        "items": [{"metadata": {"name": "a", "managedFields": MF}}],
    }
    table = {
        "kind": "Table",
        "rows": [{"cells": [], "object": {"metadata": {"name": "a", "managedFields": MF}}}],
    }
    out = apply_decision(event(verb="list", responseObject=lst), d("RequestResponse", omf=True))
    assert out is not None and out["responseObject"]["items"][0]["metadata"] == {"name": "a"}
    out = apply_decision(event(verb="list", responseObject=table), d("RequestResponse", omf=True))
    assert out is not None and out["responseObject"]["rows"][0]["object"]["metadata"] == {
        "name": "a"
    }


def test_patch_body_untouched() -> None:
    patch = [{"op": "add", "path": "/metadata/managedFields", "value": MF}]
    out = apply_decision(event(verb="patch", requestObject=patch), d("Request", omf=True))
    assert out is not None and out["requestObject"] == patch


def test_apply_level_with_policy() -> None:
    policy = load_policy(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: true\n"
        "omitStages: [RequestReceived]\nrules:\n- level: Metadata\n"
        "  resources: [{group: '', resources: [configmaps, secrets]}]\n"
        "- level: RequestResponse\n"
    )
    out = apply_level(policy, event())
    assert out is not None and out["level"] == "Metadata" and "requestObject" not in out
    assert apply_level(policy, event(stage="RequestReceived")) is None
    pods = apply_level(policy, event(objectRef={"resource": "pods", "namespace": "ns"}))
    assert pods is not None and "managedFields" not in pods["responseObject"]["metadata"]


def test_transform_config(tmp_path: Any) -> None:
    import pytest

    from kubetrail.errors import ConfigError
    from kubetrail.policy.transform import PolicyConfig

    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
        "rules:\n- level: None\n  users: [bob]\n- level: Metadata\n"
    )
    with pytest.raises(ConfigError, match="did you mean 'strict'"):
        PolicyConfig.from_dict({"path": str(path), "strickt": True})
    transform = PolicyConfig.from_dict({"path": str(path)}).build()
    bob = event(user={"username": "bob"})
    out = transform([event(), event(stage="RequestReceived"), bob])
    assert [e["level"] for e in out] == ["Metadata"]
    assert transform.dropped == {"stage-omitted": 1, "level-none": 1}
