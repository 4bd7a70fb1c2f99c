"""What a rule needs from the audit policy, checked against a Policy (``rules check``).

A rule declares the audit level and stages it needs and the requests it looks at
(``needs``). For each request, the policy is evaluated exactly as kube-apiserver would
(:func:`kubetrail.policy.evaluate`); the rule is blind when the level is lower than it needs or
a needed stage is omitted (the GKE policy drops all ``events``, so "events deleted" never
fires there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..policy import Policy, Request, evaluate
from .rules import LEVELS, NeededRequest, Rule


@dataclass(frozen=True)
class Blindness:
    """Why a rule cannot fire (or fires less) under a policy."""

    rule: Rule
    request: NeededRequest
    level: str
    missing_stages: tuple[str, ...]

    @property
    def message(self) -> str:
        r = self.request
        what = f"{r.verb} {r.group + '/' if r.group else ''}{r.resource}"
        what += f"/{r.subresource}" if r.subresource else ""
        what += f" in {r.namespace}" if r.namespace else " (cluster-scoped)"
        parts = []
        if LEVELS.index(self.level) < LEVELS.index(self.rule.needs.level):
            parts.append(f"recorded at level {self.level}, needs {self.rule.needs.level}")
        if self.missing_stages:
            parts.append(f"stage {', '.join(self.missing_stages)} omitted")
        return f"{self.rule.id}: {what} by {r.user}: {'; '.join(parts)}"


def _request(r: NeededRequest) -> Request:
    groups = ("system:authenticated",)
    if r.user.startswith("system:serviceaccount:"):
        ns = r.user.split(":")[2]
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{ns}", *groups)
    elif r.user == "system:anonymous":
        groups = ("system:unauthenticated",)
    prefix = "/api/v1" if not r.group else f"/apis/{r.group}/v1"
    path = prefix + (f"/namespaces/{r.namespace}" if r.namespace else "") + f"/{r.resource}"
    return Request(
        user=r.user,
        groups=groups,
        verb=r.verb,
        is_resource=True,
        api_group=r.group,
        resource=r.resource,
        subresource=r.subresource,
        namespace=r.namespace,
        name="x" if r.subresource else "",
        path=path,
    )


def check_rules(policy: Policy, rules: Sequence[Rule]) -> list[Blindness]:
    """Every enabled rule's needed request that ``policy`` records too little of."""
    found = []
    for rule in rules:
        if not rule.enabled:
            continue
        for needed in rule.needs.requests:
            decision = evaluate(policy, _request(needed))
            missing = tuple(s for s in rule.needs.stages if not decision.keeps(s))
            if LEVELS.index(decision.level) < LEVELS.index(rule.needs.level) or missing:
                found.append(Blindness(rule, needed, decision.level, missing))
    return found
