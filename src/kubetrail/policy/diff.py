"""``kubetrail policy diff``: events whose outcome changes between two policies, grouped.

An event's *outcome* under a policy is its level when the event is kept, or ``dropped`` (level
None, or its stage omitted). Events whose outcome is the same under both are not listed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubetrail.policy.evaluate import Decision, decision_for
from kubetrail.policy.model import Policy
from kubetrail.policy.simulate import Judge

#: (old rule, new rule, stage, username, verb, resource) -> events
PairTally = dict[tuple[int | None, int | None, str, str | None, str | None, str | None], int]


@dataclass(frozen=True)
class Change:
    """One group of changed events."""

    old: str
    new: str
    events: int
    rules: list[tuple[int | None, int | None, int]]
    top: list[tuple[str | None, str | None, str | None, int]]


@dataclass(frozen=True)
class PolicyDiff:
    """All changes, largest first, out of ``total`` events."""

    total: int
    changed: int
    changes: list[Change]


def outcome(decision: Decision, stage: str) -> str:
    """The decision's level when an event of ``stage`` is kept, else ``dropped``."""
    return decision.level if decision.keeps(stage) else "dropped"


def pair_tally_events(old: Policy, new: Policy, events: Iterable[Mapping[str, Any]]) -> PairTally:
    """Count events by (old rule, new rule, stage, user, verb, resource) with the reference."""
    jo, jn = Judge(old), Judge(new)
    tally: PairTally = Counter()
    for e in events:
        user = (e.get("user") or {}).get("username")
        resource = (e.get("objectRef") or {}).get("resource")
        tally[(jo(e).rule, jn(e).rule, str(e.get("stage")), user, e.get("verb"), resource)] += 1
    return tally


def diff_tally(old: Policy, new: Policy, tally: PairTally, top: int = 5) -> PolicyDiff:
    """Group a pair tally into changes.

    Args:
        old, new: the two policies.
        tally: from :func:`pair_tally_events` or :func:`kubetrail.policy.dbsim.pair_tally_store`.
        top: (user, verb, resource) examples per change (default 5).
    """
    od = {i: decision_for(old, i) for i in [None, *range(len(old.rules))]}
    nd = {i: decision_for(new, i) for i in [None, *range(len(new.rules))]}
    groups: dict[tuple[str, str], Counter[tuple[Any, ...]]] = defaultdict(Counter)
    rules: dict[tuple[str, str], Counter[tuple[int | None, int | None]]] = defaultdict(Counter)
    total = 0
    for (oi, ni, stage, user, verb, resource), n in tally.items():
        total += n
        a, b = outcome(od[oi], stage), outcome(nd[ni], stage)
        if a != b:
            groups[(a, b)][(user, verb, resource)] += n
            rules[(a, b)][(oi, ni)] += n
    changes = [
        Change(
            a,
            b,
            sum(c.values()),
            [(oi, ni, n) for (oi, ni), n in rules[(a, b)].most_common()],
            [(*k, n) for k, n in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]],
        )
        for (a, b), c in groups.items()
    ]
    changes.sort(key=lambda ch: (-ch.events, ch.old, ch.new))
    return PolicyDiff(total, sum(ch.events for ch in changes), changes)
