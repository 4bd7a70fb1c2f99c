"""A short activity report of a store: requests by verb, top users, denied requests.

It counts requests (the final stage of each), like every kubetrail count. The SQL here is fixed
text with no user input; it sticks to what both engines' dialects accept.
"""

from __future__ import annotations

from dataclasses import dataclass

from .store.base import EVENTS_TABLE, Store


@dataclass(frozen=True)
class Report:
    """The figures of :func:`build_report`; each list holds (key, count) pairs, largest first."""

    requests: int
    by_verb: list[tuple[str, int]]
    top_users: list[tuple[str, int]]
    denied_by_user: list[tuple[str, int]]
    denied: int


def build_report(store: Store, *, top: int = 10) -> Report:
    """Compute the report over every stored request."""

    def pairs(sql: str) -> list[tuple[str, int]]:
        table = store.query(sql, [top])
        keys, counts = table.column(0).to_pylist(), table.column(1).to_pylist()
        return [(str(k), int(c)) for k, c in zip(keys, counts, strict=True)]

    base = f"FROM {EVENTS_TABLE} WHERE is_final"
    denied_filter = "(response_code IN (401, 403) OR decision = 'forbid')"
    totals = store.query(
        f"SELECT count(*), count(*) FILTER (WHERE {denied_filter}) {base}"
    ).to_pylist()[0]
    requests, denied = (int(v or 0) for v in totals.values())
    return Report(
        requests=requests,
        by_verb=pairs(
            f"SELECT verb, count(*) AS n {base} GROUP BY verb ORDER BY n DESC, verb LIMIT ?"
        ),
        top_users=pairs(
            f"SELECT coalesce(username, '(unauthenticated)') AS u, count(*) AS n {base} "
            "GROUP BY u ORDER BY n DESC, u LIMIT ?"
        ),
        denied_by_user=pairs(
            f"SELECT coalesce(username, '(unauthenticated)') AS u, count(*) AS n {base} "
            f"AND {denied_filter} GROUP BY u ORDER BY n DESC, u LIMIT ?"
        ),
        denied=denied,
    )
