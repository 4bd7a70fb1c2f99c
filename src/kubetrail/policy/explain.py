"""``kubetrail policy explain``: which rule matches an event, and why each earlier rule did not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetrail.policy.evaluate import Decision, decision_for, why_not
from kubetrail.policy.model import Policy
from kubetrail.policy.request import Request, request_from_event


@dataclass(frozen=True)
class Step:
    """One rule tried: its index, level, and the first field that failed (``None`` = matched)."""

    index: int
    level: str
    failed: str | None


@dataclass(frozen=True)
class Explanation:
    """The request attributes, each rule tried up to the match, and the decision."""

    request: Request
    steps: list[Step]
    decision: Decision
    stage: str


def explain(policy: Policy, event: Mapping[str, Any]) -> Explanation:
    """Explain the policy's decision for one event.

    Args:
        policy: a validated policy.
        event: an audit Event.

    Returns:
        Rules tried in order until the first match (or all of them), with the first field that
        failed for each non-matching rule, in kube-apiserver's check order.
    """
    req = request_from_event(event)
    steps: list[Step] = []
    index = None
    for i, rule in enumerate(policy.rules):
        failed = why_not(rule, req)
        steps.append(Step(i, rule.level, failed))
        if failed is None:
            index = i
            break
    return Explanation(req, steps, decision_for(policy, index), str(event.get("stage", "")))
