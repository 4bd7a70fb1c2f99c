"""The overview dashboard: widgets written in the query language, run with ``run_query``.

Each widget is a query; every number it shows links to the search that produced it (the
widget's filter plus the clicked row's values, see :func:`Widget.link_query`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..query.runner import run_query
from ..store.base import Store
from .queries import TimeRange, and_terms, term

ACTION_VERBS = ("create", "update", "patch", "delete")
#: Status classes and the codes broken out of them: (label, filter).
STATUS_BUCKETS = (
    ("2xx", "code>=200 code<300"),
    ("3xx", "code>=300 code<400"),
    ("4xx", "code>=400 code<500"),
    ("5xx", "code>=500"),
    ("401", "code=401"),
    ("403", "code=403"),
    ("404", "code=404"),
    ("409", "code=409"),
)


@dataclass(frozen=True)
class Widget:
    """One panel: a title, a filter, the pipe stages, and the fields a row's link filters on."""

    key: str
    title: str
    filter: str
    stages: str
    link_fields: tuple[str, ...] = ()

    @property
    def query(self) -> str:
        """The widget's whole query."""
        return f"{self.filter} {self.stages}".strip()

    def link_query(self, row: dict[str, Any]) -> str:
        """The search behind one row: the filter and the row's values of ``link_fields``."""
        return and_terms(self.filter, *(term(f, row.get(f)) for f in self.link_fields))


def _top(key: str, title: str, field_name: str, where: str = "") -> Widget:
    flt = and_terms(where, f"exists({field_name})")
    return Widget(key, title, flt, f"| top {field_name} 10", (field_name,))


WIDGETS = (
    _top("users", "Top users", "user"),
    _top("service_accounts", "Top service accounts", "user", "actor=serviceaccount"),
    _top("namespaces", "Top namespaces", "ns"),
    _top("resources", "Top resources", "resource"),
    _top("user_agents", "Top user agents", "ua"),
    _top("source_ips", "Top source IPs", "ip"),
    Widget(
        "denied",
        "Denied requests by user",
        "code in (401, 403)",
        "| stats count() by user | sort -count | head 10",
        ("user",),
    ),
    Widget(
        "secrets",
        "Secret access by human users",
        "actor=human resource=secrets",
        "| stats count() by user, verb | sort -count | head 10",
        ("user", "verb"),
    ),
    Widget(
        "exec",
        "exec/attach sessions",
        "subresource in (exec, attach)",
        "| stats count(), max(time) as last by user, ns, name, subresource | sort -last | head 10",
        ("user", "ns", "name", "subresource"),
    ),
)
ACTIONS = Widget(
    "actions",
    "Actions",
    f"verb in ({', '.join(ACTION_VERBS)})",
    "| stats count() by resource, verb | sort -count | head 200",
    ("resource", "verb"),
)
STATUS = Widget("status", "Status codes", "exists(code)", "| stats count() by code", ("code",))


@dataclass
class Panel:
    """A widget's answer: rows as dicts, each with the ``_q`` query of its link."""

    widget: Widget
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float = 0.0


@dataclass
class Overview:
    """Every panel of the overview, plus the timechart of requests by verb."""

    panels: dict[str, Panel]
    actions: dict[str, dict[str, int]]  # resource -> verb -> count
    status: list[tuple[str, str, int]]  # (label, filter, count)
    timechart: dict[str, Any]  # {"x": [...], "series": {verb: [...]}}, "span", "query"
    elapsed_ms: float
    queries: int = 0


def _run(store: Store, widget: Widget, window: TimeRange, cluster: str | None) -> Panel:
    result = run_query(
        store, widget.query, time_from=window.start, time_to=window.end, cluster=cluster
    )
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows()]
    for row in rows:
        row["_q"] = widget.link_query(row)
    return Panel(widget, result.columns, rows, result.elapsed_ms)


#: Three queries that each answer two widgets (one scan instead of two; the widgets' own
#: queries give the same numbers, as a test checks, and are what their links show).
PEOPLE_QUERY = "exists(user) | stats count() by user, actor"
CODES_QUERY = "exists(code) | stats count() by code, user"
OBJECTS_QUERY = "| stats count() by resource, verb"
SHARED = ("users", "service_accounts", "denied", "status", "resources", "actions")


def _sort_key(value: Any) -> tuple[bool, str]:
    return (value is None, str(value))


def _top(widget: Widget, counts: dict[Any, int], n: int, percent: bool) -> Panel:
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], _sort_key(kv[0])))[:n]
    field_name = widget.link_fields[0]
    rows: list[dict[str, Any]] = []
    for value, count in ordered:
        row: dict[str, Any] = {field_name: value, "count": count}
        if percent:
            row["percent"] = count * 100.0 / total
        row["_q"] = widget.link_query(row)
        rows.append(row)
    columns = (field_name, "count", "percent") if percent else (field_name, "count")
    return Panel(widget, columns, rows)


def _shared_panels(store: Store, window: TimeRange, cluster: str | None) -> dict[str, Panel]:
    """The panels of :data:`SHARED`, from three grouped queries."""
    widgets = {w.key: w for w in (*WIDGETS, STATUS)}
    people = run_query(
        store, PEOPLE_QUERY, time_from=window.start, time_to=window.end, cluster=cluster
    )
    users: dict[Any, int] = {}
    accounts: dict[Any, int] = {}
    for user, actor, count in people.rows():
        users[user] = users.get(user, 0) + int(count)
        if actor == "serviceaccount":
            accounts[user] = accounts.get(user, 0) + int(count)
    codes_result = run_query(
        store, CODES_QUERY, time_from=window.start, time_to=window.end, cluster=cluster
    )
    codes: dict[Any, int] = {}
    denied: dict[Any, int] = {}
    for code, user, count in codes_result.rows():
        codes[code] = codes.get(code, 0) + int(count)
        if code in (401, 403):
            denied[user] = denied.get(user, 0) + int(count)
    objects = run_query(
        store, OBJECTS_QUERY, time_from=window.start, time_to=window.end, cluster=cluster
    )
    resources: dict[Any, int] = {}
    actions: list[dict[str, Any]] = []
    for resource, verb, count in objects.rows():
        if resource is not None:
            resources[resource] = resources.get(resource, 0) + int(count)
        if verb in ACTION_VERBS:
            actions.append({"resource": resource, "verb": verb, "count": int(count)})
    actions.sort(key=lambda r: -r["count"])  # stable: ties stay in (resource, verb) order
    for row in actions[:200]:
        row["_q"] = ACTIONS.link_query(row)
    panels = {
        "resources": _top(widgets["resources"], resources, 10, True),
        "actions": Panel(ACTIONS, ("resource", "verb", "count"), actions[:200], objects.elapsed_ms),
        "users": _top(widgets["users"], users, 10, True),
        "service_accounts": _top(widgets["service_accounts"], accounts, 10, True),
        "denied": _top(widgets["denied"], denied, 10, False),
        "status": _top(widgets["status"], codes, len(codes), False),
    }
    panels["users"].elapsed_ms = people.elapsed_ms
    panels["status"].elapsed_ms = codes_result.elapsed_ms
    return panels


def build_overview(store: Store, window: TimeRange, cluster: str | None) -> Overview:
    """Run every widget of the overview for a time range and cluster (``None``: all)."""
    panels = _shared_panels(store, window, cluster)
    for widget in (*WIDGETS, ACTIONS):
        if widget.key not in SHARED:
            panels[widget.key] = _run(store, widget, window, cluster)
    panels = {w.key: panels[w.key] for w in (*WIDGETS, ACTIONS, STATUS)}
    actions: dict[str, dict[str, int]] = {}
    for row in panels["actions"].rows:
        actions.setdefault(row["resource"] or "(none)", {})[row["verb"]] = int(row["count"])
    codes = {int(r["code"]): int(r["count"]) for r in panels["status"].rows if r["code"]}
    status = []
    for label, flt in STATUS_BUCKETS:
        if label.endswith("xx"):
            low = int(label[0]) * 100
            total = sum(
                n for c, n in codes.items() if low <= c < low + 100 or (label == "5xx" and c >= 500)
            )
        else:
            total = codes.get(int(label), 0)
        status.append((label, flt, total))
    span = window.span()
    chart_q = f"| timechart span={span} count() by verb"
    chart = run_query(store, chart_q, time_from=window.start, time_to=window.end, cluster=cluster)
    x: list[Any] = []
    series: dict[str, dict[Any, int]] = {}
    for t, verb, n in chart.rows():
        if t not in series.setdefault(verb or "(none)", {}):
            series[verb or "(none)"][t] = 0
        series[verb or "(none)"][t] += int(n)
        if not x or x[-1] != t:
            x.append(t)
    x = sorted(set(x))
    timechart = {
        "x": x,
        "series": {v: [s.get(t, 0) for t in x] for v, s in sorted(series.items())},
        "span": span,
        "query": chart_q,
    }
    elapsed = sum(p.elapsed_ms for p in panels.values()) + chart.elapsed_ms
    queries = 3 + sum(w.key not in SHARED for w in (*WIDGETS, ACTIONS)) + 1
    return Overview(panels, actions, status, timechart, elapsed, queries)
