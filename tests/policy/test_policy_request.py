"""Request attributes from audit events, and the why_not / covers helpers against the evaluator."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_strategies import events, rules

from kubetrail.policy.evaluate import rule_matches, why_not
from kubetrail.policy.lint import covers
from kubetrail.policy.model import PolicyRule
from kubetrail.policy.request import Request, request_from_event, request_from_uri


def test_user_absent_when_empty() -> None:
    assert request_from_event({"user": {}, "verb": "get", "requestURI": "/healthz"}).user is None
    assert (
        request_from_event({"user": {"groups": ["g"]}, "verb": "get", "requestURI": "/"}).user
        is None
    )


def test_resource_request_from_object_ref() -> None:
    ev = {
        "verb": "get",
        "requestURI": "/apis/apps/v1/namespaces/ns/deployments/d/scale?x=1",
        "user": {"username": "u", "groups": ["g"]},
        "objectRef": {
            "resource": "deployments",
            "subresource": "scale",
            "apiGroup": "apps",
            "namespace": "ns",
            "name": "d",
            "apiVersion": "v1",
        },
    }
    assert request_from_event(ev) == Request(
        "u",
        ("g",),
        "get",
        True,
        "apps",
        "deployments",
        "scale",
        "ns",
        "d",
        "/apis/apps/v1/namespaces/ns/deployments/d/scale",
    )


def test_create_name_is_empty_as_at_evaluation_time() -> None:
    ev = {
        "verb": "create",
        "requestURI": "/api/v1/namespaces/ns/configmaps",
        "objectRef": {"resource": "configmaps", "namespace": "ns", "name": "filled-from-body"},
    }
    assert request_from_event(ev).name == ""
    ev = {
        "verb": "create",
        "requestURI": "/api/v1/namespaces/ns/pods/p/exec",
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "ns", "name": "p"},
    }
    assert request_from_event(ev).name == "p"


def test_v1alpha1_group_from_api_version() -> None:
    ev = {
        "verb": "list",
        "requestURI": "/apis/apps/v1beta1/deployments",
        "objectRef": {"resource": "deployments", "apiVersion": "apps/v1beta1"},
    }
    assert request_from_event(ev).api_group == "apps"


def test_missing_object_ref_parses_uri() -> None:
    req = request_from_event(
        {"verb": "list", "requestURI": "/api/v1/namespaces/kube-system/pods?limit=5"}
    )
    assert (req.is_resource, req.resource, req.namespace) == (True, "pods", "kube-system")
    assert not request_from_event({"verb": "get", "requestURI": "/readyz?verbose"}).is_resource


def test_request_info_special_cases() -> None:
    r = request_from_uri("GET", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3D%3Dp1")
    assert (r.verb, r.name) == ("list", "p1")
    r = request_from_uri(
        "GET", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dp1,spec.nodeName%3Dn"
    )
    assert r.name == "p1"
    assert (
        request_from_uri("GET", "/api/v1/watch").is_resource is False
    )  # watch with nothing after it
    assert request_from_uri("OPTIONS", "/api/v1/pods").verb == ""
    assert request_from_uri("GET", "/").path == "/"


@settings(max_examples=400, deadline=None)
@given(rule=rules, event=events())
def test_why_not_agrees_with_rule_matches(rule: PolicyRule, event: dict[str, Any]) -> None:
    req = request_from_event(event)
    assert (why_not(rule, req) is None) == rule_matches(rule, req)


@settings(max_examples=400, deadline=None)
@given(a=rules, b=rules, evs=st.lists(events(), min_size=1, max_size=20))
def test_covers_is_sound(a: PolicyRule, b: PolicyRule, evs: list[dict[str, Any]]) -> None:
    """If lint says a shadows b, then every request b matches, a matches too."""
    if covers(a, b):
        for ev in evs:
            req = request_from_event(ev)
            assert not rule_matches(b, req) or rule_matches(a, req)
