"""The data behind the event and identity pages and the policy simulator.

The event lookup is built with sqlglot (the auditID travels as a parameter); everything else
is query-language text run with ``run_query``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlglot
from sqlglot import exp

from ..errors import UsageError
from ..policy import dbsim, simulate
from ..policy.loader import check_policy, parse_policy
from ..policy.report import simulation_dict
from ..query.runner import QueryResult, run_query
from ..store.base import EVENTS_TABLE, Store
from .queries import TimeRange, and_terms, term

AROUND = timedelta(minutes=5)
_TOP_KEYS = ("requestObject", "responseObject")


@dataclass
class EventView:
    """Every stage of one auditID and the same user's requests around it."""

    audit_id: str
    cluster: str | None
    stages: list[dict[str, Any]]
    fields: list[tuple[str, str]]
    around: QueryResult | None
    around_query: str
    time: datetime | None


def event_stages(store: Store, audit_id: str) -> list[tuple[str, dict[str, Any]]]:
    """``(cluster, event)`` of every stored stage of an auditID, oldest stage first."""
    query = (
        exp.select("cluster", "raw", "request_received")
        .from_(EVENTS_TABLE)
        .where(exp.EQ(this=exp.column("audit_id"), expression=exp.Placeholder()))
        .order_by(sqlglot.parse_one("stage_time"), sqlglot.parse_one("stage"))
        .limit(20)
    )
    table = store.query(query.sql(store.dialect), [audit_id])
    return [
        (row["cluster"], json.loads(row["raw"]) | {"_received": row["request_received"]})
        for row in table.to_pylist()
    ]


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Dotted paths and values of an event, leaving out the request and response objects."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if (key in _TOP_KEYS and not prefix) or key.startswith("_"):
                continue
            out += flatten(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(obj, list) and obj and any(isinstance(v, dict | list) for v in obj):
        for i, value in enumerate(obj):
            out += flatten(value, f"{prefix}[{i}]")
    else:
        out.append((prefix, obj if isinstance(obj, str) else json.dumps(obj)))
    return out


def event_view(store: Store, audit_id: str) -> EventView | None:
    """The event page's data, or ``None`` when the auditID is not stored."""
    found = event_stages(store, audit_id)
    if not found:
        return None
    cluster, last = found[-1]
    stages = [event for _, event in found]
    when: datetime | None = last.get("_received")
    user = (last.get("user") or {}).get("username")
    around_q = and_terms(term("user", user), f"id!={_quoted(audit_id)}")
    around = None
    if when is not None and user:
        around = run_query(
            store,
            f"{around_q} | fields time, verb, resource, ns, name, code, id",
            time_from=when - AROUND,
            time_to=when + AROUND,
            cluster=cluster,
            limit=200,
        )
    return EventView(audit_id, cluster, stages, flatten(last), around, around_q, when)


def _quoted(value: str) -> str:
    from .queries import quote

    return quote(value)


def identity_queries(user: str) -> dict[str, str]:
    """The queries of the identity page for one user or service account."""
    who = term("user", user)
    return {
        "verbs_resources": f"{who} | stats count() by verb, resource | sort -count | head 50",
        "namespaces": f"{who} exists(ns) | top ns 20",
        "source_ips": f"{who} | top ip 20",
        "user_agents": f"{who} | top ua 20",
        "denied": f"{who} code in (401, 403) | fields time, verb, resource, ns, name, code, "
        "reason, id | head 50",
    }


def run_identity(
    store: Store, user: str, window: TimeRange, cluster: str | None
) -> dict[str, QueryResult]:
    """Run the identity page's queries (plus ``activity``, a timechart by verb)."""
    queries = identity_queries(user)
    queries["activity"] = f"{term('user', user)} | timechart span={window.span()} count() by verb"
    return {
        key: run_query(store, q, time_from=window.start, time_to=window.end, cluster=cluster)
        for key, q in queries.items()
    }


def simulate_policy(store: Store, text: str, since: str | None, top: int = 5) -> dict[str, Any]:
    """Simulate a pasted Policy over stored events (``kubetrail policy simulate --db``).

    Raises:
        PolicyError: kube-apiserver would refuse the policy.
        UsageError: empty text.
    """
    if not text.strip():
        raise UsageError("paste or upload an audit Policy")
    policy = check_policy(parse_policy(text.encode("utf-8"), "policy"))
    return simulation_dict(simulate.summarize(policy, dbsim.tally_store(store, policy, since), top))
