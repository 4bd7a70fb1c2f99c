"""Simulate a policy on recorded traffic: what it keeps, what it drops, and what that saves.

Two engines produce the same :class:`Tally` and hence the same :class:`Simulation`:
``tally_events`` runs the reference evaluator over event dicts (``--events``), ``tally_store``
runs the compiled CASE inside the store (``--db``), grouping by (rule, stage, user, verb,
resource) so that only a small aggregate leaves the database.

Every input event is judged by its own request attributes, whatever level it was recorded at.
"After" bytes subtract the bodies a lower level would drop (exact on bodies the events carry;
a higher level cannot restore bodies that were never recorded).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from kubetrail.policy.evaluate import Decision, decision_for, match_index
from kubetrail.policy.model import LEVELS, Policy
from kubetrail.policy.request import request_from_event

_REQ_KEY = len('"requestObject":,')
_RESP_KEY = len('"responseObject":,')

#: (rule index or None, stage, username, verb, resource)
Key = tuple[int | None, str, str | None, str | None, str | None]


@dataclass
class Cell:
    """Counts of one (rule, stage, user, verb, resource) group."""

    events: int = 0
    bytes: int = 0
    request_body: int = 0
    response_body: int = 0


@dataclass
class Tally:
    """The aggregate both engines produce."""

    cells: dict[Key, Cell] = field(default_factory=lambda: defaultdict(Cell))
    first: datetime | None = None
    last: datetime | None = None
    #: True when byte sizes come from a sample (``simulate --db`` on large stores).
    bytes_estimated: bool = False

    def see_time(self, t: datetime | None) -> None:
        if t is None:
            return
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """The event's stage time (falling back to the request time, then v1beta1 ``timestamp``),
    as naive UTC."""
    for key in ("stageTimestamp", "requestReceivedTimestamp", "timestamp"):
        value = event.get(key)
        if isinstance(value, str) and value:
            try:
                t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
    return None


def body_sizes(event: Mapping[str, Any]) -> tuple[int, int, int]:
    """(event JSON size, requestObject share, responseObject share) in bytes."""
    size = len(msgspec.json.encode(event))
    req = event.get("requestObject")
    resp = event.get("responseObject")
    req_size = len(msgspec.json.encode(req)) + _REQ_KEY if req is not None else 0
    resp_size = len(msgspec.json.encode(resp)) + _RESP_KEY if resp is not None else 0
    return size, req_size, resp_size


class Judge:
    """Evaluates events with a cache keyed by request attributes (traffic repeats a lot)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._cache: dict[Any, Decision] = {}

    def __call__(self, event: Mapping[str, Any]) -> Decision:
        req = request_from_event(event)
        decision = self._cache.get(req)
        if decision is None:
            decision = decision_for(self.policy, match_index(self.policy, req))
            self._cache[req] = decision
        return decision


def per_event(policy: Policy, events: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """One ``{"auditID", "stage", "level", "rule", "kept"}`` dict per input event."""
    judge = Judge(policy)
    for event in events:
        d = judge(event)
        stage = event.get("stage")
        yield {
            "auditID": event.get("auditID"),
            "stage": stage,
            "level": d.level,
            "rule": d.rule,
            "kept": d.keeps(str(stage)),
        }


def tally_events(policy: Policy, events: Iterable[Mapping[str, Any]]) -> Tally:
    """Aggregate events with the reference evaluator."""
    judge = Judge(policy)
    tally = Tally()
    for event in events:
        d = judge(event)
        user = (event.get("user") or {}).get("username")
        resource = (event.get("objectRef") or {}).get("resource")
        cell = tally.cells[(d.rule, str(event.get("stage")), user, event.get("verb"), resource)]
        size, req, resp = body_sizes(event)
        cell.events += 1
        cell.bytes += size
        cell.request_body += req
        cell.response_body += resp
        tally.see_time(event_time(event))
    return tally


@dataclass(frozen=True)
class Totals:
    """Events, bytes and events per minute over the covered time span."""

    events: int
    bytes: int
    per_minute: float | None


@dataclass(frozen=True)
class RuleHits:
    """What one rule (or ``index=None``: no rule) did."""

    index: int | None
    level: str
    events: int
    kept: int
    dropped: int
    top_dropped: list[tuple[str | None, str | None, str | None, int]]


@dataclass(frozen=True)
class Simulation:
    """The result of ``policy simulate``."""

    before: Totals
    after: Totals
    by_level: dict[str, int]
    rules: list[RuleHits]
    first: datetime | None
    last: datetime | None
    bytes_estimated: bool = False

    @property
    def reduction(self) -> float:
        """Fraction of events the policy drops (0..1)."""
        return 1 - self.after.events / self.before.events if self.before.events else 0.0


def _after_bytes(cell: Cell, level: str) -> int:
    rank = LEVELS.index(level)
    size = cell.bytes
    if rank < LEVELS.index("RequestResponse"):
        size -= cell.response_body
    if rank < LEVELS.index("Request"):
        size -= cell.request_body
    return size


def summarize(policy: Policy, tally: Tally, top: int = 5) -> Simulation:
    """Turn a :class:`Tally` into before/after totals, levels, per-rule hits and top drops.

    Args:
        policy: the simulated policy.
        tally: from :func:`tally_events` or :func:`kubetrail.policy.dbsim.tally_store`.
        top: how many (user, verb, resource) groups to list per rule (default 5).
    """
    minutes = None
    if tally.first is not None and tally.last is not None and tally.last > tally.first:
        minutes = (tally.last - tally.first).total_seconds() / 60
    before_events = before_bytes = after_events = after_bytes = 0
    by_level: Counter[str] = Counter()
    hits: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    drops: dict[int | None, Counter[tuple[str | None, str | None, str | None]]] = defaultdict(
        Counter
    )
    decisions = {i: decision_for(policy, i) for i in [None, *range(len(policy.rules))]}
    for (rule, stage, user, verb, resource), cell in tally.cells.items():
        d = decisions[rule]
        before_events += cell.events
        before_bytes += cell.bytes
        by_level[d.level] += cell.events
        hits[rule][0] += cell.events
        if d.keeps(stage):
            hits[rule][1] += cell.events
            after_events += cell.events
            after_bytes += _after_bytes(cell, d.level)
        else:
            drops[rule][(user, verb, resource)] += cell.events

    def per_min(n: int) -> float | None:
        return n / minutes if minutes else None

    rules = [
        RuleHits(
            i,
            decisions[i].level,
            hits[i][0],
            hits[i][1],
            hits[i][0] - hits[i][1],
            [
                (*k, n)
                for k, n in sorted(drops[i].items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
            ],
        )
        for i in [*range(len(policy.rules)), None]
    ]
    return Simulation(
        Totals(before_events, before_bytes, per_min(before_events)),
        Totals(after_events, after_bytes, per_min(after_events)),
        {lv: by_level.get(lv, 0) for lv in LEVELS},
        rules,
        tally.first,
        tally.last,
        tally.bytes_estimated,
    )


def simulate_events(
    policy: Policy, events: Iterable[Mapping[str, Any]], top: int = 5
) -> Simulation:
    """Simulate ``policy`` over event dicts with the reference evaluator.

    Args:
        policy: a validated policy.
        events: recorded audit events (any level, any stage).
        top: dropped (user, verb, resource) groups to list per rule (default 5).
    """
    return summarize(policy, tally_events(policy, events), top)
