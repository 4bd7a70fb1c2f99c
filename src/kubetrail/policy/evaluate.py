"""The reference evaluator: kube-apiserver's ``policy.Checker`` restated.

``evaluate`` is the source of truth; the SQL compiler and every command are tested against it.
``why_not`` gives, for ``policy explain``, the first constraint of a rule that a request fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetrail.policy.model import GroupResources, Policy, PolicyRule
from kubetrail.policy.request import Request, request_from_event


@dataclass(frozen=True)
class Decision:
    """The result of evaluating one request.

    Attributes:
        level: ``None``, ``Metadata``, ``Request`` or ``RequestResponse``.
        rule: 0-based index of the matching rule, or ``None`` when no rule matched.
        omit_stages: union of the policy's and the rule's omitStages.
        omit_managed_fields: the rule's value when set, else the policy's.
    """

    level: str
    rule: int | None
    omit_stages: frozenset[str]
    omit_managed_fields: bool

    def keeps(self, stage: str) -> bool:
        """True when an event of ``stage`` is written under this decision."""
        return self.level != "None" and stage not in self.omit_stages


def _entry_matches(e: GroupResources, req: Request, full: str) -> bool:
    if e.group != req.api_group and e.group != "*":
        return False
    if not e.resources:
        return True
    if e.resource_names and req.name not in e.resource_names:
        return False
    for r in e.resources:
        if r == "*" or r == full:
            return True
        if req.subresource and r == "*/" + req.subresource:
            return True
        if r.endswith("/*") and r[:-2] == req.resource:
            return True
    return False


def _url_matches(url: str, path: str) -> bool:
    return url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1]))


def _q(values: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(values))


def why_not(rule: PolicyRule, req: Request) -> str | None:
    """The first constraint of ``rule`` that ``req`` fails, or ``None`` when the rule matches.

    Fields are checked in kube-apiserver's order: users, userGroups, verbs, then the resource
    part (namespaces, resources) or the nonResourceURLs. The text starts with the field name.
    """
    if rule.users and (req.user is None or req.user not in rule.users):
        who = (
            "the request has no authenticated user"
            if req.user is None
            else f"user {json.dumps(req.user)} is not listed"
        )
        return f"users: {who} in {_q(rule.users)}"
    if rule.user_groups and (req.user is None or not set(req.groups) & set(rule.user_groups)):
        who = (
            "the request has no authenticated user"
            if req.user is None
            else f"none of the groups {_q(req.groups)} is listed"
        )
        return f"userGroups: {who} in {_q(rule.user_groups)}"
    if rule.verbs and req.verb not in rule.verbs:
        return f"verbs: verb {json.dumps(req.verb)} not in {_q(rule.verbs)}"
    if rule.namespaces or rule.resources:
        field = "namespaces" if rule.namespaces else "resources"
        if not req.is_resource:
            return f"{field}: a non-resource request ({req.path}) never matches a resource rule"
        if rule.namespaces and req.namespace not in rule.namespaces:
            return f"namespaces: namespace {json.dumps(req.namespace)} not in {_q(rule.namespaces)}"
        if not rule.resources:
            return None
        full = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
        if any(_entry_matches(e, req, full) for e in rule.resources):
            return None
        what = f"{req.api_group or 'core'} {full}" + (
            f" name {json.dumps(req.name)}" if req.name else ""
        )
        if not any(e.group in (req.api_group, "*") for e in rule.resources):
            return f"resources: no entry for group {json.dumps(req.api_group)} ({what})"
        return f"resources: no entry of group {json.dumps(req.api_group)} matches {what}"
    if rule.non_resource_urls:
        if req.is_resource:
            return "nonResourceURLs: a resource request never matches a non-resource rule"
        if not any(_url_matches(u, req.path) for u in rule.non_resource_urls):
            urls = _q(rule.non_resource_urls)
            return f"nonResourceURLs: path {json.dumps(req.path)} matches none of {urls}"
    return None


def rule_matches(rule: PolicyRule, req: Request) -> bool:
    """True when every constraint ``rule`` sets is satisfied by ``req`` (``ruleMatches``)."""
    if rule.users and (req.user is None or req.user not in rule.users):
        return False
    if rule.user_groups and (
        req.user is None or not any(g in rule.user_groups for g in req.groups)
    ):
        return False
    if rule.verbs and req.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        if not req.is_resource:
            return False
        if rule.namespaces and req.namespace not in rule.namespaces:
            return False
        if not rule.resources:
            return True
        full = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
        return any(_entry_matches(e, req, full) for e in rule.resources)
    if rule.non_resource_urls:
        if req.is_resource:
            return False
        return any(_url_matches(u, req.path) for u in rule.non_resource_urls)
    return True


def decision_for(policy: Policy, index: int | None) -> Decision:
    """The decision a policy gives when rule ``index`` (or no rule, ``None``) matches."""
    if index is None:
        return Decision("None", None, frozenset(policy.omit_stages), policy.omit_managed_fields)
    rule = policy.rules[index]
    omf = (
        policy.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
    )
    return Decision(
        rule.level, index, frozenset(policy.omit_stages) | frozenset(rule.omit_stages), omf
    )


def match_index(policy: Policy, req: Request) -> int | None:
    """Index of the first rule that matches ``req``, or ``None``."""
    for i, rule in enumerate(policy.rules):
        if rule_matches(rule, req):
            return i
    return None


def evaluate(policy: Policy, req: Request) -> Decision:
    """Evaluate a request exactly as kube-apiserver does: the first matching rule wins.

    Args:
        policy: a validated policy.
        req: the request attributes.

    Returns:
        The level, matching rule index, omitted stages and omitManagedFields. No match gives
        level ``None`` with the policy's omitStages and omitManagedFields.
    """
    return decision_for(policy, match_index(policy, req))


def evaluate_event(policy: Policy, event: Mapping[str, Any]) -> Decision:
    """:func:`evaluate` on the request an audit Event records."""
    return evaluate(policy, request_from_event(event))
