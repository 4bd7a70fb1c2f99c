"""Hypothesis strategies for random policies and events (small alphabets, many collisions)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from kubetrail.policy.model import GroupResources, Policy, PolicyRule

USERS = ["alice", "bob", "system:kube-proxy", "system:node:n1"]
GROUPS = ["g1", "g2", "system:nodes", "system:authenticated"]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "post"]
RESOURCES = ["pods", "configmaps", "deployments", "scale", "secrets"]
SUBRESOURCES = ["log", "status", "scale", "exec"]
API_GROUPS = ["", "apps", "x.io"]
NAMESPACES = ["", "ns1", "kube-system"]
NAMES = ["", "n1", "cm1"]
PATHS = [
    "/",
    "/healthz",
    "/healthz/etcd",
    "/healthzfoo",
    "/api",
    "/apis",
    "/apis/apps/v1",
    "/version",
    "/metrics",
    "/a'b",
]
PATTERNS = [
    "*",
    "pods",
    "pods/log",
    "pods/*",
    "*/scale",
    "*/*",
    "deployments/scale",
    "configmaps",
    "po*",
    "secrets",
    "*/status",
    "pods/",
]
URLS = ["*", "/healthz*", "/healthz", "/api*", "/apis/*", "/*", "/version", "/a'b", "/metrics"]
LEVELS = ["None", "Metadata", "Request", "RequestResponse"]
STAGES = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]


def _sub(values: list[str], max_size: int = 3) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), max_size=max_size).map(tuple)


group_resources = st.builds(
    GroupResources,
    group=st.sampled_from([*API_GROUPS, "*"]),
    resources=_sub(PATTERNS),
    resource_names=_sub(NAMES, 2),
)

rules = st.builds(
    PolicyRule,
    level=st.sampled_from(LEVELS),
    users=_sub(USERS, 2),
    user_groups=_sub(GROUPS, 2),
    verbs=_sub(VERBS),
    resources=st.lists(group_resources, max_size=3).map(tuple),
    namespaces=_sub(NAMESPACES, 2),
    non_resource_urls=_sub(URLS, 2),
    omit_stages=_sub(STAGES, 2),
    omit_managed_fields=st.sampled_from([None, True, False]),
)

policies = st.builds(
    Policy,
    rules=st.lists(rules, min_size=0, max_size=6).map(tuple),
    omit_stages=_sub(STAGES, 2),
    omit_managed_fields=st.booleans(),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "auditID": "x",
        "stage": draw(st.sampled_from(STAGES)),
        "verb": draw(st.sampled_from(VERBS)),
    }
    user = draw(st.sampled_from([*USERS, None]))
    event["user"] = (
        {} if user is None else {"username": user, "groups": list(draw(_sub(GROUPS, 3)))}
    )
    path = draw(st.sampled_from(PATHS))
    if draw(st.booleans()):
        ref: dict[str, Any] = {"resource": draw(st.sampled_from(RESOURCES)), "apiVersion": "v1"}
        for key, values in (
            ("subresource", SUBRESOURCES),
            ("apiGroup", API_GROUPS[1:]),
            ("namespace", NAMESPACES[1:]),
            ("name", NAMES[1:]),
        ):
            if draw(st.booleans()):
                ref[key] = draw(st.sampled_from(values))
        if "apiGroup" not in ref and draw(st.booleans()):
            ref["apiVersion"] = "apps/v1beta1"  # v1alpha1 style: the group only in apiVersion
        event["objectRef"] = ref
        path = "/api/v1/x"
    event["requestURI"] = path + draw(st.sampled_from(["", "?timeout=32s", "?a=1&b=2"]))
    return event


ROW_SCHEMA = pa.schema(
    [
        ("idx", pa.int64()),
        ("audit_id", pa.string()),
        ("stage", pa.string()),
        ("username", pa.string()),
        ("user_groups", pa.list_(pa.string())),
        ("verb", pa.string()),
        ("api_group", pa.string()),
        ("api_version", pa.string()),
        ("resource", pa.string()),
        ("subresource", pa.string()),
        ("namespace", pa.string()),
        ("name", pa.string()),
        ("request_uri", pa.string()),
    ]
)


def to_rows(evs: list[dict[str, Any]]) -> pa.Table:
    """The store's columns for each event (absent = NULL, as the schema contract says)."""
    rows = []
    for i, e in enumerate(evs):
        ref = e.get("objectRef") or {}
        user = e.get("user") or {}
        rows.append(
            {
                "idx": i,
                "audit_id": e.get("auditID"),
                "stage": e.get("stage"),
                "username": user.get("username"),
                "user_groups": user.get("groups"),
                "verb": e.get("verb"),
                "api_group": ref.get("apiGroup"),
                "api_version": ref.get("apiVersion"),
                "resource": ref.get("resource"),
                "subresource": ref.get("subresource"),
                "namespace": ref.get("namespace"),
                "name": ref.get("name"),
                "request_uri": e.get("requestURI"),
            }
        )
    return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
