"""``kubetrail policy generate``: propose a policy from observed traffic.

The proposal keeps every write and every human request, logs Secrets, ConfigMaps and token
reviews/requests at Metadata (never their bodies), drops the noisiest read-only traffic of
system identities (service accounts, nodes, ``system:*`` users), and omits RequestReceived.
Rule order matters (first match wins): sensitive resources first, then the drops, which only
name read verbs of non-human users, then writes at Request, then a Metadata catch-all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from kubetrail.policy.evaluate import _url_matches
from kubetrail.policy.model import GroupResources, Policy, PolicyRule
from kubetrail.policy.request import Request, request_from_event

READ_VERBS = ("get", "list", "watch")
#: Health, version and discovery URLs that clients poll.
POLLING_URLS = (
    "/healthz*",
    "/livez*",
    "/readyz*",
    "/version",
    "/metrics",
    "/openapi/*",
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
)
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
_SENSITIVE = (
    GroupResources("", ("secrets", "configmaps", "serviceaccounts/token")),
    GroupResources("authentication.k8s.io", ("tokenreviews",)),
)
_PEOPLE = frozenset({"system:admin", "system:anonymous"})


def is_system(user: str | None, groups: tuple[str, ...]) -> bool:
    """True for identities that are not people: service accounts, nodes and the control plane's
    ``system:*`` users. ``system:admin``, ``system:anonymous`` and members of ``system:masters``
    (admin certificates, which people use) count as people and are never dropped."""
    if user is None or user in _PEOPLE:
        return False
    if user.startswith(("system:serviceaccount:", "system:node:")):
        return True
    return user.startswith("system:") and "system:masters" not in groups


def _sensitive(group: str, resource: str, sub: str) -> bool:
    full = f"{resource}/{sub}" if sub else resource
    return any(e.group == group and full in e.resources for e in _SENSITIVE) or (
        group == "" and resource in ("secrets", "configmaps")
    )


def count_requests(events: Iterable[Mapping[str, Any]]) -> Counter[Request]:
    """Count events by their request attributes (what :func:`propose_counts` needs)."""
    counts: Counter[Request] = Counter()
    for e in events:
        counts[request_from_event(e)] += 1
    return counts


def propose(
    events: Iterable[Mapping[str, Any]], min_share: float = 0.01, max_rules: int = 12
) -> Policy:
    """Propose a policy for the observed events (see :func:`propose_counts`)."""
    return propose_counts(count_requests(events), min_share, max_rules)


def propose_counts(
    requests: Counter[Request], min_share: float = 0.01, max_rules: int = 12
) -> Policy:
    """Propose a policy for observed traffic, given as events counted by request.

    Args:
        requests: events per request attributes (names and namespaces are not used).
        min_share: drop a read-only (user, resource) group only if it is at least this share of
            all events (default 1 %).
        max_rules: at most this many drop rules (default 12), noisiest first.

    Returns:
        The proposed policy (valid by construction).
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    urls: Counter[str] = Counter()
    total = sum(requests.values())
    for req, n in requests.items():
        if not is_system(req.user, req.groups) or req.verb not in READ_VERBS:
            continue
        assert req.user is not None
        if req.is_resource:
            if not _sensitive(req.api_group, req.resource, req.subresource):
                full = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
                counts[(req.user, req.api_group, full)] += n
        elif any(_url_matches(u, req.path) for u in POLLING_URLS):
            urls[req.user] += n
    floor = max(1, int(total * min_share))
    by_user: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    weight: Counter[str] = Counter()
    for (user, group, resource), n in counts.most_common():
        if n < floor:
            break
        by_user[user][group].add(resource)
        weight[user] += n
    drops = [
        PolicyRule(
            level="None",
            users=(user,),
            verbs=READ_VERBS,
            resources=tuple(
                GroupResources(g, tuple(sorted(rs))) for g, rs in sorted(by_user[user].items())
            ),
        )
        for user, _ in weight.most_common(max_rules)
    ]
    url_users = sorted(u for u, n in urls.items() if n >= floor)
    rules = [PolicyRule(level="Metadata", resources=_SENSITIVE), *drops]
    if url_users:
        rules.append(
            PolicyRule(
                level="None",
                users=tuple(url_users),
                verbs=("get", "head"),
                non_resource_urls=POLLING_URLS,
            )
        )
    rules += [PolicyRule(level="Request", verbs=WRITE_VERBS), PolicyRule(level="Metadata")]
    return Policy(rules=tuple(rules), omit_stages=("RequestReceived",), omit_managed_fields=True)


def _rule_dict(rule: PolicyRule) -> dict[str, Any]:
    out: dict[str, Any] = {"level": rule.level}
    for attr, key in (
        ("users", "users"),
        ("user_groups", "userGroups"),
        ("verbs", "verbs"),
        ("namespaces", "namespaces"),
        ("non_resource_urls", "nonResourceURLs"),
    ):
        if getattr(rule, attr):
            out[key] = list(getattr(rule, attr))
    if rule.resources:
        out["resources"] = [
            {"group": e.group, **({"resources": list(e.resources)} if e.resources else {})}
            for e in rule.resources
        ]
    if rule.omit_stages:
        out["omitStages"] = list(rule.omit_stages)
    return out


def to_yaml(policy: Policy, notes: Mapping[int, str] | None = None) -> str:
    """Render a policy as commented YAML (``audit.k8s.io/v1``)."""
    head = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": list(policy.omit_stages),
        "omitManagedFields": policy.omit_managed_fields,
    }
    out = [yaml.safe_dump(head, sort_keys=False).rstrip(), "rules:"]
    for i, rule in enumerate(policy.rules):
        note = (notes or {}).get(i)
        if note:
            out.append(f"  # {note}")
        d = _rule_dict(rule)
        if len(d) == 1:
            out.append(f"  - level: {rule.level}")
            continue
        body = yaml.safe_dump([d], sort_keys=False, default_flow_style=False, width=100)
        out.extend("  " + line for line in body.rstrip().splitlines())
    return "\n".join(out) + "\n"


def describe(policy: Policy) -> dict[int, str]:
    """One comment per generated rule."""
    notes: dict[int, str] = {}
    for i, rule in enumerate(policy.rules):
        if rule.level == "Metadata" and rule.resources:
            notes[i] = (
                "Secrets, ConfigMaps and token reviews/requests: metadata only, never their data."
            )
        elif rule.level == "None" and rule.resources:
            notes[i] = f"Noisy read-only traffic of {rule.users[0]} (a system identity)."
        elif rule.level == "None":
            notes[i] = "Health, version and discovery polling by system identities."
        elif rule.level == "Request":
            notes[i] = "Every write, with its request body."
        else:
            notes[i] = "Everything else, every human request included: metadata."
    return notes
