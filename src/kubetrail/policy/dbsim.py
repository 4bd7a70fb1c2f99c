"""Run a compiled policy inside the store (``policy simulate --db`` and friends).

The SQL is built with sqlglot: the policy's CASE from :mod:`kubetrail.policy.compile`, constant
column expressions parsed once from DuckDB SQL and transpiled for ClickHouse, and the ``--since``
bound travelling as a parameter.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlglot
from sqlglot import exp

from kubetrail.errors import UsageError
from kubetrail.policy.compile import rule_index_query
from kubetrail.policy.model import Policy
from kubetrail.policy.request import Request
from kubetrail.policy.simulate import Tally
from kubetrail.query.dialects import DIALECTS

_TIME = "COALESCE(stage_time, request_received)"
_BYTES = "strlen(raw)"
# A body's share of the event: its compact JSON plus the key (same formula as body_sizes()).
_REQ_BODY = (
    "CASE WHEN contains(raw, '\"requestObject\"') "
    "THEN coalesce(strlen(CAST(json_extract(raw, '$.requestObject') AS VARCHAR)) + 17, 0) "
    "ELSE 0 END"
)
_RESP_BODY = (
    "CASE WHEN contains(raw, '\"responseObject\"') "
    "THEN coalesce(strlen(CAST(json_extract(raw, '$.responseObject') AS VARCHAR)) + 18, 0) "
    "ELSE 0 END"
)
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` -> a timedelta.

    Raises:
        UsageError: the text is not ``<number><s|m|h|d|w>``.
    """
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"invalid duration {text!r}: use a number and s, m, h, d or w (e.g. 24h)")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _byte_lengths(tree: exp.Expr, dialect: str) -> exp.Expr:
    """The templates are written with DuckDB's ``strlen`` (bytes): each becomes the target
    dialect's byte length."""
    target = DIALECTS[dialect]()

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "strlen":
            return target.byte_length(node.expressions[0])
        return node

    return tree.transform(swap)


def _const(sql: str, alias: str) -> exp.Expr:
    return exp.alias_(sqlglot.parse_one(sql, read="duckdb"), alias)


def _where(since: str | None) -> tuple[exp.Expr | None, list[Any]]:
    if since is None:
        return None, []
    cutoff = datetime.now(UTC).replace(tzinfo=None) - parse_since(since)
    cond = exp.GTE(this=sqlglot.parse_one(_TIME, read="duckdb"), expression=exp.Placeholder())
    return cond, [cutoff]


def _body_size(key: str, levels: tuple[str, ...], rules: list[int]) -> exp.Expr:
    """Size of one body, computed only where it matters: the event was recorded with it
    (recorded level) and the simulated rule's level drops it. Everywhere else 0, so that the
    costly JSON work touches few rows."""
    if not rules:
        return exp.Literal.number(0)
    size = sqlglot.parse_one(_REQ_BODY if key == "requestObject" else _RESP_BODY, read="duckdb")
    cond = exp.and_(
        exp.In(this=exp.column("rec_level"), expressions=[exp.Literal.string(lv) for lv in levels]),
        exp.In(this=exp.column("rule_idx"), expressions=[exp.Literal.number(i) for i in rules]),
    )
    return exp.Case().when(cond, size).else_(exp.Literal.number(0))


def tally_sql(
    policy: Policy,
    dialect: str = "duckdb",
    since: str | None = None,
    *,
    with_bytes: bool = True,
    keys: tuple[str, ...] = ("rule_idx", "stage", "username", "verb", "resource"),
    sample_percent: float | None = None,
) -> tuple[str, list[Any]]:
    """The aggregate query behind ``simulate --db`` and its parameters.

    Args:
        policy: the simulated policy.
        dialect: SQL dialect (default ``duckdb``).
        since: only events of the last duration.
        with_bytes: also sum event and body sizes (reads the ``raw`` column: the costly part).
        keys: the grouping columns.
        sample_percent: scan only this share of the table (DuckDB system sampling).
    """
    where, params = _where(since)
    columns: list[exp.Expr] = [
        exp.column("stage"),
        exp.column("username"),
        exp.column("verb"),
        exp.column("resource"),
        _const(_TIME, "t"),
    ]
    if with_bytes:
        columns += [exp.alias_(exp.column("level"), "rec_level"), exp.column("raw")]
    inner_select = rule_index_query(policy, columns, dialect, where)
    if sample_percent is not None:
        table = inner_select.find(exp.Table)
        assert table is not None
        table.set(
            "sample",
            exp.TableSample(method=exp.var("SYSTEM"), percent=exp.Literal.number(sample_percent)),
        )
    inner = inner_select.subquery("r")
    aggs: list[exp.Expr] = [exp.alias_(exp.Count(this=exp.Star()), "n")]
    if with_bytes:
        below_request = [i for i, r in enumerate(policy.rules) if r.level == "Metadata"]
        below_rr = [i for i, r in enumerate(policy.rules) if r.level in ("Metadata", "Request")]
        aggs += [
            exp.alias_(exp.Sum(this=sqlglot.parse_one(_BYTES, read="duckdb")), "b"),
            exp.alias_(
                exp.Sum(
                    this=_body_size("requestObject", ("Request", "RequestResponse"), below_request)
                ),
                "rq",
            ),
            exp.alias_(
                exp.Sum(this=_body_size("responseObject", ("RequestResponse",), below_rr)), "rs"
            ),
        ]
    aggs += [
        exp.alias_(exp.Min(this=exp.column("t")), "t0"),
        exp.alias_(exp.Max(this=exp.column("t")), "t1"),
    ]
    select = exp.select(*keys, *aggs).from_(inner).group_by(*keys)
    return _byte_lengths(select, dialect).sql(dialect), params


#: Above this many events, ``simulate --db`` estimates bytes from a sample (counts stay exact).
EXACT_BYTES_LIMIT = 2_000_000
SAMPLE_PERCENT = 10.0


def tally_store(
    store: Any, policy: Policy, since: str | None = None, exact_bytes: bool | None = None
) -> Tally:
    """Aggregate stored events with the compiled policy, inside the store.

    Event counts are always exact. Bytes need the ``raw`` column, which costs more than the
    policy itself; above :data:`EXACT_BYTES_LIMIT` events (unless ``exact_bytes``) they are
    estimated from a 10 % sample: each (rule, stage) group gets its sampled mean sizes, and the
    tally is marked ``bytes_estimated``.

    Args:
        store: a :class:`kubetrail.store.Store`.
        policy: a validated policy.
        since: only events of the last duration (``24h``), default all.
        exact_bytes: force exact (True) or sampled (False) bytes; default: by size.
    """
    dialect = getattr(store, "dialect", "duckdb")
    if exact_bytes is None:
        where, params = _where(since)
        count_q = exp.select(exp.Count(this=exp.Star())).from_("events")
        if where is not None:
            count_q = count_q.where(where)
        total = int(store.query(count_q.sql(dialect), params).column(0)[0].as_py())
        exact_bytes = total <= EXACT_BYTES_LIMIT or dialect != "duckdb"
    sql, params = tally_sql(policy, dialect, since, with_bytes=exact_bytes)
    tally = Tally(bytes_estimated=not exact_bytes)
    for row in store.query(sql, params).to_pylist():
        idx = row["rule_idx"]
        cell = tally.cells[
            (
                None if idx is None else int(idx),
                row["stage"],
                row["username"],
                row["verb"],
                row["resource"],
            )
        ]
        cell.events += int(row["n"])
        if exact_bytes:
            cell.bytes += int(row["b"] or 0)
            cell.request_body += int(row["rq"] or 0)
            cell.response_body += int(row["rs"] or 0)
        tally.see_time(row["t0"])
        tally.see_time(row["t1"])
    if not exact_bytes:
        _estimate_bytes(store, policy, since, tally)
    return tally


def _estimate_bytes(store: Any, policy: Policy, since: str | None, tally: Tally) -> None:
    sql, params = tally_sql(
        policy,
        getattr(store, "dialect", "duckdb"),
        since,
        keys=("rule_idx", "stage"),
        sample_percent=SAMPLE_PERCENT,
    )
    means: dict[tuple[int | None, str], tuple[float, float, float]] = {}
    n_all = b_all = 0
    for row in store.query(sql, params).to_pylist():
        n = int(row["n"])
        idx = None if row["rule_idx"] is None else int(row["rule_idx"])
        means[(idx, row["stage"])] = (
            int(row["b"] or 0) / n,
            int(row["rq"] or 0) / n,
            int(row["rs"] or 0) / n,
        )
        n_all += n
        b_all += int(row["b"] or 0)
    fallback = (b_all / n_all if n_all else 0.0, 0.0, 0.0)
    for (idx, stage, *_), cell in tally.cells.items():
        b, rq, rs = means.get((idx, stage), fallback)
        cell.bytes = round(b * cell.events)
        cell.request_body = round(rq * cell.events)
        cell.response_body = round(rs * cell.events)


def per_event_store(
    store: Any, policy: Policy, since: str | None = None
) -> Iterator[tuple[str, str, int | None]]:
    """(auditID, stage, rule index) of every stored event, in time order."""
    where, params = _where(since)
    columns = [exp.column("audit_id"), exp.column("stage"), _const(_TIME, "t")]
    query = rule_index_query(policy, columns, getattr(store, "dialect", "duckdb"), where)
    query = query.order_by(exp.column("t", table="e"), exp.column("audit_id", table="e"))
    table = store.query(query.sql(getattr(store, "dialect", "duckdb")), params)
    for row in table.to_pylist():
        idx = row["rule_idx"]
        yield row["audit_id"], row["stage"], None if idx is None else int(idx)


def fetch_event(store: Any, audit_id: str) -> list[dict[str, Any]]:
    """The stored events (every stage) of one auditID, decoded from ``raw``."""
    import json

    query = (
        exp.select("raw")
        .from_("events")
        .where(exp.EQ(this=exp.column("audit_id"), expression=exp.Placeholder()))
        .order_by(sqlglot.parse_one(_TIME, read="duckdb"))
    )
    table = store.query(query.sql(getattr(store, "dialect", "duckdb")), [audit_id])
    return [json.loads(r) for r in table.column("raw").to_pylist()]


def pair_tally_store(
    store: Any, old: Policy, new: Policy, since: str | None = None
) -> dict[Any, int]:
    """``policy diff --db``: events by (old rule, new rule, stage, user, verb, resource)."""
    from kubetrail.policy.compile import compile_rule_index, derived_select

    dialect = getattr(store, "dialect", "duckdb")
    where, params = _where(since)
    keys = ["stage", "username", "verb", "resource"]
    inner = derived_select([exp.column(k) for k in keys], dialect, where).subquery("e")
    select = (
        exp.select(
            exp.alias_(compile_rule_index(old, dialect), "old_idx"),
            exp.alias_(compile_rule_index(new, dialect), "new_idx"),
            *keys,
            exp.alias_(exp.Count(this=exp.Star()), "n"),
        )
        .from_(inner)
        .group_by(exp.Literal.number(1), exp.Literal.number(2), *keys)
    )
    out: dict[Any, int] = {}
    for row in store.query(select.sql(dialect), params).to_pylist():
        oi, ni = row["old_idx"], row["new_idx"]
        key = (
            None if oi is None else int(oi),
            None if ni is None else int(ni),
            row["stage"],
            row["username"],
            row["verb"],
            row["resource"],
        )
        out[key] = out.get(key, 0) + int(row["n"])
    return out


def request_counts_store(store: Any, since: str | None = None) -> Counter[Request]:
    """Stored events counted by the request attributes ``policy generate`` uses (user, groups,
    verb, group, resource, subresource, path), aggregated inside the store."""
    from kubetrail.policy.compile import Columns

    dialect = getattr(store, "dialect", "duckdb")
    c = Columns(dialect)
    where, params = _where(since)
    cols = [
        exp.column("username"),
        exp.column("user_groups"),
        exp.column("verb"),
        exp.column("resource"),
        exp.alias_(c.derivations["_kt_group"], "g"),
        exp.alias_(c.derivations["_kt_sub"], "sub"),
        exp.alias_(c.derivations["_kt_path"], "path"),
    ]
    query = exp.select(*cols, exp.alias_(exp.Count(this=exp.Star()), "n")).from_("events")
    if where is not None:
        query = query.where(where)
    query = query.group_by(*[exp.Literal.number(i) for i in range(1, len(cols) + 1)])
    counts: Counter[Request] = Counter()
    for row in store.query(query.sql(dialect), params).to_pylist():
        resource = row["resource"] or ""
        req = Request(
            user=row["username"] or None,
            groups=tuple(row["user_groups"] or ()),
            verb=row["verb"] or "",
            is_resource=bool(resource),
            api_group=row["g"] if resource else "",
            resource=resource,
            subresource=row["sub"] if resource else "",
            path=row["path"] or "/",
        )
        counts[req] += int(row["n"])
    return counts
