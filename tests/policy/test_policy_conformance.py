"""Conformance table: kube-apiserver policy evaluation, case by case.

Every case is derived from kubernetes/apiserver ``pkg/audit/policy/checker.go`` (ruleMatches,
ruleMatchesResource, ruleMatchesNonResource), ``pkg/endpoints/request/requestinfo.go`` and their
tests, as restated in ``kubernetes-audit-reference.md`` sections a.1-a.4. A case is
(id, rules, request, expected index of the matching rule or None). Requests given as
``(METHOD, URI, user, groups)`` go through the RequestInfo parser first, so the URL rules are
exercised too. Each case also runs through the compiled SQL (see test_compile.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetrail.policy.evaluate import evaluate
from kubetrail.policy.loader import parse_policy
from kubetrail.policy.request import Request, request_from_uri

ALICE = ("alice", ("devs", "system:authenticated"))
NODE = ("system:node:n1", ("system:nodes", "system:authenticated"))
PROXY = ("system:kube-proxy", ("system:authenticated",))
NOUSER: tuple[None, tuple[str, ...]] = (None, ())


def U(method: str, uri: str, who: tuple[Any, tuple[str, ...]] = ALICE) -> Request:
    return request_from_uri(method, uri, who[0], who[1])


def R(**kw: Any) -> dict[str, Any]:
    kw.setdefault("level", "Metadata")
    return kw


def res(
    group: str = "", resources: list[str] | None = None, names: list[str] | None = None
) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"group": group}
    if resources is not None:
        entry["resources"] = resources
    if names is not None:
        entry["resourceNames"] = names
    return [entry]


PODS = "/api/v1/namespaces/ns1/pods"
MATCH, NO = 0, None

CASES: list[tuple[str, list[dict[str, Any]], Request, int | None]] = [
    # --- users (a.3 step 1) ---
    ("users-exact", [R(users=["alice"])], U("GET", PODS), MATCH),
    ("users-case-sensitive", [R(users=["Alice"])], U("GET", PODS), NO),
    ("users-no-user", [R(users=["alice"])], U("GET", PODS, NOUSER), NO),
    ("users-star-literal", [R(users=["*"])], U("GET", PODS), NO),
    ("users-one-of-many", [R(users=["bob", "alice"])], U("GET", PODS), MATCH),
    ("users-empty-any", [R()], U("GET", PODS, NOUSER), MATCH),
    ("users-authenticated-not-impersonated", [R(users=["bob"])], U("GET", PODS), NO),
    # --- userGroups (step 2) ---
    ("groups-member", [R(userGroups=["devs"])], U("GET", PODS), MATCH),
    ("groups-any-of", [R(userGroups=["ops", "system:authenticated"])], U("GET", PODS), MATCH),
    ("groups-none-shared", [R(userGroups=["ops"])], U("GET", PODS), NO),
    ("groups-no-user", [R(userGroups=["system:unauthenticated"])], U("GET", PODS, NOUSER), NO),
    (
        "groups-not-inferred-from-name",
        [R(userGroups=["system:serviceaccounts"])],
        U("GET", PODS, ("system:serviceaccount:a:b", ())),
        NO,
    ),
    ("groups-case-sensitive", [R(userGroups=["Devs"])], U("GET", PODS), NO),
    ("users-and-groups-both-needed", [R(users=["alice"], userGroups=["ops"])], U("GET", PODS), NO),
    # --- verbs (step 3) and verb derivation (a.2) ---
    ("verbs-list", [R(verbs=["list"])], U("GET", PODS), MATCH),
    ("verbs-get-not-list", [R(verbs=["get"])], U("GET", PODS), NO),
    ("verbs-star-literal", [R(verbs=["*"])], U("GET", PODS), NO),
    ("verbs-case-sensitive", [R(verbs=["LIST"])], U("GET", PODS), NO),
    ("verbs-get-named", [R(verbs=["get"])], U("GET", PODS + "/p1"), MATCH),
    ("verbs-head-is-get", [R(verbs=["get"])], U("HEAD", PODS + "/p1"), MATCH),
    ("verbs-watch-query", [R(verbs=["watch"])], U("GET", PODS + "?watch=true"), MATCH),
    ("verbs-watch-query-1", [R(verbs=["watch"])], U("GET", PODS + "?watch=1"), MATCH),
    ("verbs-watch-false-is-list", [R(verbs=["list"])], U("GET", PODS + "?watch=false"), MATCH),
    (
        "verbs-watch-prefix",
        [R(verbs=["watch"])],
        U("GET", "/api/v1/watch/namespaces/ns1/pods"),
        MATCH,
    ),
    ("verbs-create", [R(verbs=["create"])], U("POST", PODS), MATCH),
    ("verbs-update", [R(verbs=["update"])], U("PUT", PODS + "/p1"), MATCH),
    ("verbs-patch", [R(verbs=["patch"])], U("PATCH", PODS + "/p1"), MATCH),
    ("verbs-delete", [R(verbs=["delete"])], U("DELETE", PODS + "/p1"), MATCH),
    ("verbs-deletecollection", [R(verbs=["deletecollection"])], U("DELETE", PODS), MATCH),
    ("verbs-nonresource-lowercase-method", [R(verbs=["get"])], U("GET", "/healthz"), MATCH),
    ("verbs-nonresource-post-not-create", [R(verbs=["create"])], U("POST", "/logs/x"), NO),
    ("verbs-nonresource-post", [R(verbs=["post"])], U("POST", "/logs/x"), MATCH),
    # --- resource vs non-resource (a.2) ---
    (
        "discovery-group-version-nonresource",
        [R(nonResourceURLs=["/apis/apps/v1"])],
        U("GET", "/apis/apps/v1"),
        MATCH,
    ),
    ("discovery-group-nonresource", [R(resources=res("apps"))], U("GET", "/apis/apps"), NO),
    ("discovery-api-v1-nonresource", [R(nonResourceURLs=["/api/v1"])], U("GET", "/api/v1"), MATCH),
    ("discovery-api-nonresource", [R(namespaces=[""])], U("GET", "/api"), NO),
    ("discovery-apis-nonresource", [R(nonResourceURLs=["/apis"])], U("GET", "/apis"), MATCH),
    ("api-v1-pods-is-resource", [R(resources=res("", ["pods"]))], U("GET", "/api/v1/pods"), MATCH),
    (
        "namespace-get-sets-namespace",
        [R(namespaces=["kube-system"], resources=res("", ["namespaces"]))],
        U("GET", "/api/v1/namespaces/kube-system"),
        MATCH,
    ),
    (
        "namespace-get-not-cluster-scoped",
        [R(namespaces=[""])],
        U("GET", "/api/v1/namespaces/kube-system"),
        NO,
    ),
    (
        "namespace-status-subresource",
        [R(resources=res("", ["namespaces/status"]))],
        U("PUT", "/api/v1/namespaces/ns1/status"),
        MATCH,
    ),
    (
        "namespace-finalize-subresource",
        [R(resources=res("", ["namespaces/finalize"]), namespaces=["ns1"])],
        U("PUT", "/api/v1/namespaces/ns1/finalize"),
        MATCH,
    ),
    (
        "namespace-list-cluster-scoped",
        [R(namespaces=[""], resources=res("", ["namespaces"]))],
        U("GET", "/api/v1/namespaces"),
        MATCH,
    ),
    (
        "apps-scale-subresource",
        [R(resources=res("apps", ["deployments/scale"]))],
        U("PUT", "/apis/apps/v1/namespaces/ns1/deployments/d/scale"),
        MATCH,
    ),
    (
        "proxy-prefix-no-subresource",
        [R(verbs=["proxy"], resources=res("", ["pods"]))],
        U("GET", "/api/v1/proxy/namespaces/ns1/pods/p1/a/b"),
        MATCH,
    ),
    (
        "subresource-proxy-path",
        [R(resources=res("", ["pods/proxy"]))],
        U("GET", "/api/v1/namespaces/ns1/pods/p1/proxy/x"),
        MATCH,
    ),
    # --- namespaces (step 4) ---
    ("ns-match", [R(namespaces=["ns1"])], U("GET", PODS), MATCH),
    ("ns-no-match", [R(namespaces=["ns2"])], U("GET", PODS), NO),
    ("ns-empty-cluster-scoped", [R(namespaces=[""])], U("GET", "/api/v1/nodes/n1"), MATCH),
    ("ns-empty-all-namespace-list", [R(namespaces=[""])], U("GET", "/api/v1/pods"), MATCH),
    ("ns-empty-not-namespaced", [R(namespaces=[""])], U("GET", PODS), NO),
    (
        "ns-only-rule-any-resource",
        [R(namespaces=["ns1"])],
        U("GET", "/apis/apps/v1/namespaces/ns1/deployments"),
        MATCH,
    ),
    ("ns-rule-fails-nonresource", [R(namespaces=["ns1"])], U("GET", "/healthz"), NO),
    (
        "ns-rule-ignores-urls",
        [R(namespaces=["ns1"], nonResourceURLs=["/nothing"])],
        U("GET", PODS),
        MATCH,
    ),
    # --- resources (step 4) ---
    ("res-plain", [R(resources=res("", ["pods"]))], U("GET", PODS), MATCH),
    ("res-plain-not-subresource", [R(resources=res("", ["pods"]))], U("GET", PODS + "/p1/log"), NO),
    ("res-sub-not-plain", [R(resources=res("", ["pods/log"]))], U("GET", PODS + "/p1"), NO),
    ("res-sub-exact", [R(resources=res("", ["pods/log"]))], U("GET", PODS + "/p1/log"), MATCH),
    ("res-star", [R(resources=res("", ["*"]))], U("GET", PODS), MATCH),
    ("res-star-subresource", [R(resources=res("", ["*"]))], U("GET", PODS + "/p1/exec"), MATCH),
    (
        "res-star-group-bound",
        [R(resources=res("", ["*"]))],
        U("GET", "/apis/apps/v1/deployments"),
        NO,
    ),
    (
        "res-star-slash-sub",
        [R(resources=res("apps", ["*/scale"]))],
        U("GET", "/apis/apps/v1/namespaces/ns1/deployments/d/scale"),
        MATCH,
    ),
    (
        "res-star-slash-sub-other-group",
        [R(resources=res("", ["*/scale"]))],
        U("GET", "/apis/apps/v1/namespaces/ns1/deployments/d/scale"),
        NO,
    ),
    (
        "res-star-slash-sub-not-toplevel",
        [R(resources=res("", ["*/scale"]))],
        U("GET", "/api/v1/namespaces/ns1/scale"),
        NO,
    ),
    (
        "res-star-slash-sub-other-sub",
        [R(resources=res("", ["*/status"]))],
        U("GET", PODS + "/p1/log"),
        NO,
    ),
    ("res-r-slash-star-sub", [R(resources=res("", ["pods/*"]))], U("GET", PODS + "/p1/log"), MATCH),
    ("res-r-slash-star-plain-quirk", [R(resources=res("", ["pods/*"]))], U("GET", PODS), MATCH),
    (
        "res-r-slash-star-other",
        [R(resources=res("", ["pods/*"]))],
        U("GET", "/api/v1/namespaces/ns1/services/s/proxy"),
        NO,
    ),
    ("res-star-star-nothing", [R(resources=res("", ["*/*"]))], U("GET", PODS + "/p1/log"), NO),
    ("res-prefix-glob-nothing", [R(resources=res("", ["po*"]))], U("GET", PODS), NO),
    ("res-sub-glob-nothing", [R(resources=res("", ["pods/l*"]))], U("GET", PODS + "/p1/log"), NO),
    (
        "res-core-not-apps",
        [R(resources=res("", ["deployments"]))],
        U("GET", "/apis/apps/v1/deployments"),
        NO,
    ),
    (
        "res-apps-group",
        [R(resources=res("apps", ["deployments"]))],
        U("GET", "/apis/apps/v1/deployments"),
        MATCH,
    ),
    (
        "res-group-only-any-resource",
        [R(resources=res("apps"))],
        U("GET", "/apis/apps/v1/namespaces/ns1/statefulsets/s/status"),
        MATCH,
    ),
    (
        "res-group-only-names-ignored",
        [R(resources=res("", None, ["x"]))],
        U("GET", PODS + "/other"),
        MATCH,
    ),
    (
        "res-any-entry",
        [R(resources=[{"group": "apps"}, {"group": "", "resources": ["pods"]}])],
        U("GET", PODS),
        MATCH,
    ),
    (
        "res-group-star-136",
        [R(resources=res("*", ["deployments"]))],
        U("GET", "/apis/apps/v1/deployments"),
        MATCH,
    ),
    ("res-group-star-core", [R(resources=res("*"))], U("GET", PODS), MATCH),
    (
        "res-version-not-group",
        [R(resources=res("apps/v1"))],
        U("GET", "/apis/apps/v1/deployments"),
        NO,
    ),
    ("res-rule-fails-nonresource", [R(resources=res("", ["*"]))], U("GET", "/healthz"), NO),
    ("res-rule-empty-group-entry", [R(resources=[{}])], U("GET", PODS), MATCH),
    # --- resourceNames ---
    (
        "names-exact",
        [R(resources=res("", ["configmaps"], ["cm1"]))],
        U("GET", "/api/v1/namespaces/ns1/configmaps/cm1"),
        MATCH,
    ),
    (
        "names-other",
        [R(resources=res("", ["configmaps"], ["cm1"]))],
        U("GET", "/api/v1/namespaces/ns1/configmaps/cm2"),
        NO,
    ),
    (
        "names-star-literal",
        [R(resources=res("", ["configmaps"], ["*"]))],
        U("GET", "/api/v1/namespaces/ns1/configmaps/cm1"),
        NO,
    ),
    (
        "names-create-empty-name",
        [R(resources=res("", ["configmaps"], ["cm1"]))],
        U("POST", "/api/v1/namespaces/ns1/configmaps"),
        NO,
    ),
    (
        "names-list-empty-name",
        [R(resources=res("", ["configmaps"], ["cm1"]))],
        U("GET", "/api/v1/namespaces/ns1/configmaps"),
        NO,
    ),
    (
        "names-empty-string-listed",
        [R(resources=res("", ["configmaps"], [""]))],
        U("POST", "/api/v1/namespaces/ns1/configmaps"),
        MATCH,
    ),
    (
        "names-field-selector",
        [R(resources=res("", ["configmaps"], ["cm1"]))],
        U("GET", "/api/v1/namespaces/ns1/configmaps?fieldSelector=metadata.name%3Dcm1&watch=true"),
        MATCH,
    ),
    (
        "names-subresource",
        [R(resources=res("", ["pods/exec"], ["p1"]))],
        U("POST", PODS + "/p1/exec"),
        MATCH,
    ),
    # --- nonResourceURLs (step 5) ---
    ("url-exact", [R(nonResourceURLs=["/version"])], U("GET", "/version"), MATCH),
    ("url-exact-not-trailing-slash", [R(nonResourceURLs=["/version"])], U("GET", "/version/"), NO),
    (
        "url-query-ignored",
        [R(nonResourceURLs=["/version"])],
        U("GET", "/version?timeout=32s"),
        MATCH,
    ),
    ("url-prefix-self", [R(nonResourceURLs=["/healthz*"])], U("GET", "/healthz"), MATCH),
    ("url-prefix-child", [R(nonResourceURLs=["/healthz*"])], U("GET", "/healthz/etcd"), MATCH),
    ("url-prefix-raw-string", [R(nonResourceURLs=["/healthz*"])], U("GET", "/healthzfoo"), MATCH),
    ("url-prefix-slash-star-not-parent", [R(nonResourceURLs=["/apis/*"])], U("GET", "/apis"), NO),
    ("url-root-star", [R(nonResourceURLs=["/*"])], U("GET", "/"), MATCH),
    ("url-star", [R(nonResourceURLs=["*"])], U("GET", "/metrics"), MATCH),
    ("url-rule-fails-resource", [R(nonResourceURLs=["*"])], U("GET", PODS), NO),
    ("url-api-star-openshift", [R(nonResourceURLs=["/api*"])], U("GET", "/api"), MATCH),
    ("url-api-star-discovery", [R(nonResourceURLs=["/api*"])], U("GET", "/apis/apps/v1"), MATCH),
    ("url-no-user-allowed", [R(nonResourceURLs=["/livez"])], U("GET", "/livez", NOUSER), MATCH),
    (
        "url-groups-no-user",
        [R(userGroups=["system:unauthenticated"], nonResourceURLs=["/livez"])],
        U("GET", "/livez", NOUSER),
        NO,
    ),
    # --- rules without resource constraints (step 6) ---
    ("bare-matches-resource", [R(verbs=["get"])], U("GET", PODS + "/p1"), MATCH),
    ("bare-matches-nonresource", [R(users=["alice"])], U("GET", "/metrics"), MATCH),
    # --- first match wins (a.4) ---
    (
        "first-match-none-wins",
        [R(level="None", users=["system:kube-proxy"]), R()],
        U("GET", "/api/v1/endpoints", PROXY),
        0,
    ),
    (
        "first-match-skips",
        [R(level="None", users=["system:kube-proxy"]), R()],
        U("GET", "/api/v1/endpoints"),
        1,
    ),
    (
        "first-match-order",
        [R(resources=res("", ["pods"])), R(level="RequestResponse", resources=res("", ["pods"]))],
        U("GET", PODS),
        0,
    ),
    (
        "nodes-group-get",
        [
            R(
                level="None",
                userGroups=["system:nodes"],
                verbs=["get"],
                resources=res("", ["nodes", "nodes/status"]),
            ),
            R(),
        ],
        U("GET", "/api/v1/nodes/n1/status", NODE),
        0,
    ),
    ("no-rule-matches", [R(users=["bob"]), R(verbs=["create"])], U("GET", PODS), None),
]


def _policy(rules: list[dict[str, Any]], **top: Any) -> Any:
    # Decode without validation: a few cases pin how the evaluator treats rules that validation
    # refuses (kube-apiserver's checker defines their behaviour all the same).
    return parse_policy(
        json.dumps({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules, **top})
    ).policy


@pytest.mark.parametrize(("case", "rules", "req", "expected"), CASES, ids=[c[0] for c in CASES])
def test_conformance(
    case: str, rules: list[dict[str, Any]], req: Request, expected: int | None
) -> None:
    decision = evaluate(_policy(rules), req)
    assert decision.rule == expected
    if expected is None:
        assert decision.level == "None"
    else:
        assert decision.level == rules[expected]["level"]


def test_enough_cases() -> None:
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)


# --- result shape (a.4): omitStages union, omitManagedFields precedence, default None ---


def test_no_match_gives_policy_defaults() -> None:
    p = _policy([R(users=["bob"])], omitStages=["RequestReceived"], omitManagedFields=True)
    d = evaluate(p, U("GET", PODS))
    assert (d.level, d.rule, d.omit_stages, d.omit_managed_fields) == (
        "None",
        None,
        {"RequestReceived"},
        True,
    )


def test_omit_stages_union() -> None:
    p = _policy(
        [R(omitStages=["ResponseStarted", "RequestReceived"])],
        omitStages=["RequestReceived", "Panic"],
    )
    assert evaluate(p, U("GET", PODS)).omit_stages == {
        "RequestReceived",
        "ResponseStarted",
        "Panic",
    }


@pytest.mark.parametrize(
    ("policy_value", "rule_value", "expected"),
    [(True, False, False), (False, True, True), (True, None, True), (False, None, False)],
)
def test_omit_managed_fields_precedence(
    policy_value: bool, rule_value: bool | None, expected: bool
) -> None:
    rule = R() if rule_value is None else R(omitManagedFields=rule_value)
    p = _policy([rule], omitManagedFields=policy_value)
    assert evaluate(p, U("GET", PODS)).omit_managed_fields is expected


def test_keeps() -> None:
    p = _policy([R(level="None", users=["bob"]), R(omitStages=["RequestReceived"])])
    d = evaluate(p, U("GET", PODS))
    assert d.keeps("ResponseComplete") and not d.keeps("RequestReceived")
    assert not evaluate(p, U("GET", PODS, ("bob", ()))).keeps("ResponseComplete")
