"""Stored alerts: the ``alerts`` and ``alert_deliveries`` tables of the event store.

An alert is keyed by (rule, cluster, key): while an alert of that key is open and was last
seen less than its cooldown ago, a new match adds to it (count, last seen, auditIDs) instead of
raising a new one. Alerts are written before any sink is tried, so an unreachable sink loses
nothing; each sink's delivery state is kept next to the alert.

Times are stored as naive UTC (like every time in the store) and returned as aware UTC.
Every value travels as a bound parameter.

Both engines keep alerts. The embedded store updates rows in place; on ClickHouse a change is
a new version of the whole row in a ``ReplacingMergeTree`` keyed by id, and reads use
``FINAL``, so the newest version is the one seen. Each writer folds matches under a lock of its
process; two collectors raising the same key at the same moment may each open an alert.
"""

from __future__ import annotations

import re
import threading
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import UsageError
from ..store.base import Store

STATUSES = ("open", "acknowledged", "resolved")
SEVERITIES = ("info", "low", "medium", "high", "critical")
#: The most auditIDs kept per alert (the first ones; ``count`` keeps the true number).
MAX_AUDIT_IDS = 100

_ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    id VARCHAR PRIMARY KEY,
    rule VARCHAR NOT NULL,
    title VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    tags VARCHAR[] NOT NULL,
    cluster VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    count BIGINT NOT NULL,
    audit_ids VARCHAR[] NOT NULL,
    acknowledged_by VARCHAR,
    resolved_by VARCHAR,
    updated_at TIMESTAMP NOT NULL
)"""

_DELIVERIES_DDL = """
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id VARCHAR NOT NULL,
    sink VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    last_error VARCHAR,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (alert_id, sink)
)"""

_CH_ALERTS_COLUMNS = """
    id String,
    rule String,
    title String,
    severity LowCardinality(String),
    tags Array(String),
    cluster LowCardinality(String),
    key String,
    message String,
    status LowCardinality(String),
    first_seen DateTime64(6, 'UTC'),
    last_seen DateTime64(6, 'UTC'),
    count Int64,
    audit_ids Array(String),
    acknowledged_by Nullable(String),
    resolved_by Nullable(String),
    updated_at DateTime64(6, 'UTC')"""

_CH_DELIVERIES_COLUMNS = """
    alert_id String,
    sink String,
    state LowCardinality(String),
    attempts Int32,
    last_error Nullable(String),
    updated_at DateTime64(6, 'UTC')"""

_CH_NAME = re.compile(r"[A-Za-z0-9_]+")


def clickhouse_ddl(database: str | None = None, cluster: str | None = None) -> list[str]:
    """The alert tables on ClickHouse (``kubetrail store init`` prints and runs these too).

    Without ``cluster`` they are plain ``ReplacingMergeTree`` tables (in the connection's
    database unless ``database`` is given). With a ``cluster`` they are created ``ON CLUSTER``
    as ``ReplicatedReplacingMergeTree`` in one replication group over every node, like the
    store's ``meta`` table: alerts are few, and every node then answers for all of them.

    Raises:
        UsageError: a database or cluster name outside ``[A-Za-z0-9_]``.
    """
    for name in (database, cluster):
        if name is not None and not _CH_NAME.fullmatch(name):
            raise UsageError(f"'{name}': ClickHouse database and cluster names are [A-Za-z0-9_]")
    prefix = f"`{database}`." if database else ""
    on = f" ON CLUSTER `{cluster}`" if cluster else ""
    out = []
    for table, columns, order in (
        ("alerts", _CH_ALERTS_COLUMNS, "id"),
        ("alert_deliveries", _CH_DELIVERIES_COLUMNS, "(alert_id, sink)"),
    ):
        engine = (
            f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{database}}/{table}', "
            "'{replica}', updated_at)"
            if cluster
            else "ReplacingMergeTree(updated_at)"
        )
        out.append(
            f"CREATE TABLE IF NOT EXISTS {prefix}{table}{on} ({columns}\n) "
            f"ENGINE = {engine} ORDER BY {order}"
        )
    return out


_COLUMNS = (
    "id, rule, title, severity, tags, cluster, key, message, status, first_seen, last_seen, "
    "count, audit_ids, acknowledged_by, resolved_by"
)
# One writer at a time per process: the find-then-update of record_alert must not interleave.
_WRITE_LOCK = threading.Lock()
_READY: weakref.WeakSet[Any] = weakref.WeakSet()


@dataclass(frozen=True)
class Delivery:
    """The state of one alert at one sink: ``pending``, ``delivered`` or ``failed``."""

    sink: str
    state: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored.

    Attributes:
        id: a unique id (hex).
        rule: the id of the rule that raised it.
        title, severity, tags: copied from the rule when the alert was raised.
        cluster: the cluster of the matching events.
        key: what makes two matches the same alert (the rule's ``by`` values, or the auditID).
        message: the rule's output template filled with the first matching event.
        status: ``open``, ``acknowledged`` or ``resolved``.
        first_seen, last_seen: request times (aware UTC) of the first and last matching events.
        count: matching events (requests) folded into this alert.
        audit_ids: auditIDs of the matching events (at most :data:`MAX_AUDIT_IDS`).
        acknowledged_by, resolved_by: who changed the status.
        deliveries: the alert's state at each sink it was sent to.
    """

    id: str
    rule: str
    title: str
    severity: str
    tags: tuple[str, ...]
    cluster: str
    key: str
    message: str
    status: str
    first_seen: datetime
    last_seen: datetime
    count: int
    audit_ids: tuple[str, ...]
    acknowledged_by: str | None
    resolved_by: str | None
    deliveries: tuple[Delivery, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The alert as a dict (times RFC 3339 UTC; ``auditIDs`` as the issue names it)."""
        return {
            "id": self.id,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "tags": list(self.tags),
            "cluster": self.cluster,
            "key": self.key,
            "message": self.message,
            "status": self.status,
            "first_seen": _rfc3339(self.first_seen),
            "last_seen": _rfc3339(self.last_seen),
            "count": self.count,
            "auditIDs": list(self.audit_ids),
            "acknowledged_by": self.acknowledged_by,
            "resolved_by": self.resolved_by,
            "deliveries": [
                {"sink": d.sink, "state": d.state, "attempts": d.attempts, "error": d.last_error}
                for d in self.deliveries
            ],
        }


def ensure_tables(store: Store) -> None:
    """Create the alert tables in ``store`` if they are missing (once per store object)."""
    if store in _READY:
        return
    if _on_clickhouse(store):
        for ddl in clickhouse_ddl():
            store.command(ddl)  # type: ignore[attr-defined]
    else:
        store.query(_ALERTS_DDL)
        store.query(_DELIVERIES_DDL)
    _READY.add(store)


def _on_clickhouse(store: Store) -> bool:
    return getattr(store, "dialect", "duckdb") == "clickhouse"


def _table(store: Store, name: str) -> str:
    """``alerts`` or ``alerts FINAL``: on ClickHouse only the newest version of a row counts."""
    return f"{name} FINAL" if _on_clickhouse(store) else name


def _contains(store: Store, column: str) -> str:
    """``column`` is one of the list given as the next parameter."""
    return f"has(?, {column})" if _on_clickhouse(store) else f"list_contains(?, {column})"


def _put_rows(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    """Write whole rows: new ones, or new versions of stored ones (same key)."""
    if not rows:
        return
    columns = list(rows[0])
    if _on_clickhouse(store):
        values = [[_aware(r[c]) for c in columns] for r in rows]
        store.insert_rows(table, columns, values)  # type: ignore[attr-defined]
        return
    lists = {"tags", "audit_ids"}
    selects = ", ".join(
        "unnest(?, max_depth := 1)" if c in lists else "unnest(?)" for c in columns
    )
    store.query(
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) SELECT {selects} "
        f"RETURNING {columns[0]}",
        [[r[c] for r in rows] for c in columns],
    )


def record_alert(
    store: Store,
    *,
    rule: str,
    title: str,
    severity: str,
    cluster: str,
    key: str,
    message: str,
    time: datetime,
    audit_ids: Sequence[str],
    tags: Iterable[str] = (),
    count: int | None = None,
    cooldown: timedelta = timedelta(hours=1),
) -> tuple[StoredAlert, bool]:
    """Store a match: fold it into the open alert of the same key, or raise a new alert.

    Args:
        store: the event store.
        rule, title, severity, tags: the rule's id and descriptive fields.
        cluster: the cluster of the events.
        key: the alert key (same rule + cluster + key within ``cooldown`` = same alert).
        message: the filled output template.
        time: request time of the (last) matching event.
        audit_ids: auditIDs of the matching events.
        count: matching requests (default: ``len(audit_ids)``).
        cooldown: how long after its last match an open alert still absorbs new matches.

    Returns:
        ``(alert, new)``: the stored alert and whether it was raised now (to be sent to sinks).

    Raises:
        UsageError: an unknown severity.
    """
    if severity not in SEVERITIES:
        raise UsageError(f"unknown severity '{severity}'; use one of {', '.join(SEVERITIES)}")
    item = NewMatch(
        rule=rule,
        title=title,
        severity=severity,
        tags=tuple(tags),
        cluster=cluster,
        key=key,
        message=message,
        first=time,
        last=time,
        audit_ids=tuple(audit_ids),
        count=len(audit_ids) if count is None else count,
        cooldown=cooldown,
    )
    ((alert_id, new),) = _fold(store, [item])
    alert = get_alert(store, alert_id)
    assert alert is not None
    return alert, new


@dataclass(frozen=True)
class NewMatch:
    """One keyed group of matches to store with :func:`record_many`."""

    rule: str
    title: str
    severity: str
    tags: tuple[str, ...]
    cluster: str
    key: str
    message: str
    first: datetime
    last: datetime
    audit_ids: tuple[str, ...]
    count: int
    cooldown: timedelta = timedelta(hours=1)
    #: ``add`` (stateless: every match is new) or ``max`` (a threshold group seen again).
    fold: str = "add"


def record_many(store: Store, items: Sequence[NewMatch]) -> list[StoredAlert]:
    """Store many keyed matches with a few statements; return the alerts raised now.

    Each item folds into the open alert of its (rule, cluster, key) when that alert was last
    seen within the item's cooldown, else it raises a new alert. Items are expected to be
    folded by key already (one per key).
    """
    if not items:
        return []
    new_ids = [alert_id for alert_id, new in _fold(store, items) if new]
    if not new_ids:
        return []
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {_table(store, 'alerts')} WHERE {_contains(store, 'id')} "
        "ORDER BY first_seen, id",
        [new_ids],
    ).to_pylist()
    return [_alert(r, ()) for r in rows]


def _fold(store: Store, items: Sequence[NewMatch]) -> list[tuple[str, bool]]:
    """Fold each item into its open alert or raise a new one; ``(alert id, new)`` per item."""
    ensure_tables(store)
    keys = [_key(i.rule, i.cluster, i.key) for i in items]
    with _WRITE_LOCK:
        found = store.query(
            f"SELECT {_COLUMNS} FROM {_table(store, 'alerts')} WHERE status <> 'resolved' AND "
            + _contains(store, "concat(rule, ?, cluster, ?, key)")
            + " ORDER BY last_seen",
            [keys, _SEP, _SEP],
        ).to_pylist()
        open_by_key = {_key(r["rule"], r["cluster"], r["key"]): r for r in found}
        now = _naive(datetime.now(UTC))
        rows: list[dict[str, Any]] = []
        out: list[tuple[str, bool]] = []
        for item, key in zip(items, keys, strict=True):
            current = open_by_key.get(key)
            first, last = _naive(item.first), _naive(item.last)
            ids = list(dict.fromkeys(item.audit_ids))
            if current is not None and current["last_seen"] >= first - item.cooldown:
                count = current["count"] + item.count
                if item.fold == "max":
                    count = max(current["count"], item.count)
                row = {
                    **current,
                    "count": count,
                    "first_seen": min(current["first_seen"], first),
                    "last_seen": max(current["last_seen"], last),
                    "audit_ids": list(dict.fromkeys([*(current["audit_ids"] or ()), *ids]))[
                        :MAX_AUDIT_IDS
                    ],
                }
                out.append((row["id"], False))
            else:
                if item.severity not in SEVERITIES:
                    raise UsageError(
                        f"unknown severity '{item.severity}'; use one of {', '.join(SEVERITIES)}"
                    )
                row = {
                    "id": uuid.uuid4().hex,
                    "rule": item.rule,
                    "title": item.title,
                    "severity": item.severity,
                    "tags": list(item.tags),
                    "cluster": item.cluster,
                    "key": item.key,
                    "message": item.message,
                    "status": "open",
                    "first_seen": first,
                    "last_seen": last,
                    "count": item.count,
                    "audit_ids": ids[:MAX_AUDIT_IDS],
                    "acknowledged_by": None,
                    "resolved_by": None,
                }
                out.append((row["id"], True))
            open_by_key[key] = row  # a later item of the same key folds into this one
            rows.append({**row, "updated_at": now})
        _put_rows(store, "alerts", list({r["id"]: r for r in rows}.values()))
    return out


_SEP = "\x1f"


def _key(rule: str, cluster: str, key: str) -> str:
    return f"{rule}{_SEP}{cluster}{_SEP}{key}"


def list_alerts(
    store: Store,
    *,
    since: datetime | None = None,
    status: str | None = None,
    cluster: str | None = None,
    limit: int = 500,
) -> list[StoredAlert]:
    """Stored alerts, most recently seen first.

    Args:
        store: the event store.
        since: only alerts last seen at or after this time (naive = UTC).
        status: only alerts with this status.
        cluster: only alerts of this cluster.
        limit: the most alerts to return.
    """
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status '{status}'; use one of {', '.join(STATUSES)}")
    ensure_tables(store)
    where, params = ["1 = 1"], []
    if since is not None:
        where.append("last_seen >= ?")
        params.append(_naive(since))
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if cluster is not None:
        where.append("cluster = ?")
        params.append(cluster)
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {_table(store, 'alerts')} WHERE {' AND '.join(where)} "
        f"ORDER BY last_seen DESC, id LIMIT {max(0, int(limit))}",
        params,
    ).to_pylist()
    return _with_deliveries(store, rows)


def get_alert(store: Store, alert_id: str) -> StoredAlert | None:
    """The alert with this id, or ``None``."""
    ensure_tables(store)
    rows = store.query(
        f"SELECT {_COLUMNS} FROM {_table(store, 'alerts')} WHERE id = ?", [alert_id]
    ).to_pylist()
    alerts = _with_deliveries(store, rows)
    return alerts[0] if alerts else None


def set_status(store: Store, alert_id: str, status: str, by: str) -> StoredAlert:
    """Acknowledge, resolve or reopen an alert.

    Raises:
        KeyError: no alert has this id.
        UsageError: an unknown status.
    """
    if status not in STATUSES:
        raise UsageError(f"unknown status '{status}'; use one of {', '.join(STATUSES)}")
    ensure_tables(store)
    with _WRITE_LOCK:
        found = store.query(
            f"SELECT {_COLUMNS} FROM {_table(store, 'alerts')} WHERE id = ?", [alert_id]
        ).to_pylist()
        if found:
            row = dict(found[0])
            row["status"] = status
            if status == "open":
                row["acknowledged_by"] = row["resolved_by"] = None
            elif status == "acknowledged":
                row["acknowledged_by"], row["resolved_by"] = by, None
            else:
                row["resolved_by"] = by
            _put_rows(store, "alerts", [{**row, "updated_at": _naive(datetime.now(UTC))}])
    rows = len(found)
    if not rows:
        raise KeyError(alert_id)
    alert = get_alert(store, alert_id)
    assert alert is not None
    return alert


def set_delivery(
    store: Store, alert_id: str, sink: str, state: str, attempts: int, error: str | None = None
) -> None:
    """Record the state of an alert at one sink (``pending``, ``delivered``, ``failed``)."""
    ensure_tables(store)
    row = {
        "alert_id": alert_id,
        "sink": sink,
        "state": state,
        "attempts": attempts,
        "last_error": error,
        "updated_at": _naive(datetime.now(UTC)),
    }
    with _WRITE_LOCK:
        _put_rows(store, "alert_deliveries", [row])


def _with_deliveries(store: Store, rows: list[dict[str, Any]]) -> list[StoredAlert]:
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    found = store.query(
        "SELECT alert_id, sink, state, attempts, last_error "
        f"FROM {_table(store, 'alert_deliveries')} WHERE {_contains(store, 'alert_id')} "
        "ORDER BY alert_id, sink",
        [ids],
    ).to_pylist()
    by_alert: dict[str, list[Delivery]] = {}
    for d in found:
        by_alert.setdefault(d["alert_id"], []).append(
            Delivery(d["sink"], d["state"], int(d["attempts"]), d["last_error"])
        )
    return [_alert(r, tuple(by_alert.get(r["id"], ()))) for r in rows]


def _alert(row: dict[str, Any], deliveries: tuple[Delivery, ...]) -> StoredAlert:
    return StoredAlert(
        id=row["id"],
        rule=row["rule"],
        title=row["title"],
        severity=row["severity"],
        tags=tuple(row["tags"] or ()),  # ClickHouse reads an empty list back as NULL
        cluster=row["cluster"],
        key=row["key"],
        message=row["message"],
        status=row["status"],
        first_seen=row["first_seen"].replace(tzinfo=UTC),
        last_seen=row["last_seen"].replace(tzinfo=UTC),
        count=int(row["count"]),
        audit_ids=tuple(row["audit_ids"] or ()),
        acknowledged_by=row["acknowledged_by"],
        resolved_by=row["resolved_by"],
        deliveries=deliveries,
    )


def _aware(value: Any) -> Any:
    """Naive-UTC datetimes made aware (what the ClickHouse client expects); others as they are."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
