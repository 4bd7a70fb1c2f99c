"""What the UI and ``/api`` share about running queries: time ranges, building query text from
clicked values, splitting off a query's filter, and the JSON of a result.

Values clicked in the UI become query-language text through :func:`quote`, which escapes every
character the language treats specially; the query compiler then turns them into SQL literals
with sqlglot. No user value is ever pasted into SQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import UsageError
from ..query import parse
from ..query.ast import Timechart
from ..query.runner import QueryResult, parse_duration, parse_instant

#: The time ranges of the picker (value → label); ``custom`` uses ``from``/``to``.
RANGES = {"15m": "last 15 min", "1h": "last 1 h", "24h": "last 24 h", "7d": "last 7 d"}
DEFAULT_RANGE = "24h"
#: Timechart spans (they divide a day), the smallest giving at most ~120 buckets is chosen.
_SPANS = [
    ("10s", 10),
    ("30s", 30),
    ("1m", 60),
    ("5m", 300),
    ("10m", 600),
    ("15m", 900),
    ("30m", 1800),
    ("1h", 3600),
    ("2h", 7200),
    ("6h", 21600),
    ("12h", 43200),
    ("1d", 86400),
]


@dataclass(frozen=True)
class TimeRange:
    """A query's window: naive-UTC ``start`` (inclusive) and ``end`` (exclusive, or open)."""

    start: datetime | None
    end: datetime | None
    key: str  # a RANGES key, "custom" or "all"
    now: datetime | None = None  # when a relative range was resolved

    def params(self) -> dict[str, str]:
        """The URL parameters that give this range back."""
        if self.key == "custom":
            out = {"range": "custom"}
            if self.start:
                out["from"] = iso(self.start)
            if self.end:
                out["to"] = iso(self.end)
            return out
        return {"range": self.key}

    def span(self) -> str:
        """A timechart span that gives at most ~120 buckets over this range."""
        end = self.end or self.now or datetime.now(UTC).replace(tzinfo=None)
        start = self.start or end - timedelta(days=7)
        seconds = max((end - start).total_seconds(), 1)
        if self.key not in ("custom", "all"):
            # The length asked for, not the up to 59 s more that starting on the minute adds.
            seconds = parse_duration(self.key).total_seconds()
        for text, size in _SPANS:
            if seconds / size <= 120:
                return text
        return "1d"


def time_range(params: Mapping[str, str], now: datetime | None = None) -> TimeRange:
    """The range of a request's ``range``/``since`` or ``from``/``to`` parameters.

    A relative range (``24h``) starts on the whole minute at or before ``now`` minus its length.

    Raises:
        UsageError: a bad duration or time.
    """
    current = now or datetime.now(UTC).replace(tzinfo=None)
    start = parse_instant(params["from"]) if params.get("from") else None
    end = parse_instant(params["to"]) if params.get("to") else None
    key = params.get("range") or params.get("since") or ""
    if start or end or key == "custom":
        return TimeRange(start, end, "custom")
    if key == "all":
        return TimeRange(None, None, "all")
    key = key or DEFAULT_RANGE
    # On a whole minute (up to 59 s more than asked): ClickHouse then counts a chart's range
    # from its per-minute projection (query/dialects/rollup.py); the embedded store is as fast.
    start = (current - parse_duration(key)).replace(second=0, microsecond=0)
    return TimeRange(start, None, key, current)


def iso(value: datetime) -> str:
    """RFC 3339 UTC with seconds (``2024-05-01T12:00:00Z``)."""
    return value.replace(microsecond=0).isoformat() + "Z"


def quote(value: Any) -> str:
    """A value as query-language text that matches exactly that value (no wildcards)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return str(value)
    if isinstance(value, datetime):
        return '"' + value.isoformat() + 'Z"'
    text = str(value)
    for ch, esc in (
        ("\\", "\\\\"),
        ('"', '\\"'),
        ("*", "\\*"),
        ("\n", "\\n"),
        ("\t", "\\t"),
        ("\r", "\\r"),
    ):
        text = text.replace(ch, esc)
    return f'"{text}"'


def term(field: str, value: Any) -> str:
    """A filter term saying ``field`` has ``value`` (``not exists(f)`` for a missing one)."""
    if value is None or value == []:
        return f"not exists({field})"
    if isinstance(value, list):
        return " ".join(f"{field}={quote(v)}" for v in value)
    return f"{field}={quote(value)}"


def and_terms(*parts: str) -> str:
    """Join filter parts with ``and``, each in parentheses when it has ``or``."""
    kept = [p.strip() for p in parts if p and p.strip()]
    if len(kept) <= 1:
        return kept[0] if kept else ""
    return " ".join(f"({p})" if " or " in f" {p.lower()} " else p for p in kept)


def split_filter(text: str) -> tuple[str, str]:
    """``(filter, stages)``: the text before the first ``|`` outside quotes, and the rest."""
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "|" and not quoted:
            return text[:i].strip(), text[i:].strip()
    return text.strip(), ""


def is_timechart(text: str) -> bool:
    """Whether a query ends in a ``timechart`` aggregation."""
    return any(isinstance(s, Timechart) for s in parse(text).stages)


def plain(value: Any) -> Any:
    """A value as JSON holds it (times as RFC 3339 UTC), as ``kubetrail query --format json``."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def result_dict(result: QueryResult) -> dict[str, Any]:
    """``{"columns", "rows", "elapsed_ms"}``: the JSON of ``kubetrail query --format json``."""
    return {
        "columns": list(result.columns),
        "rows": [[plain(v) for v in row] for row in result.rows()],
        "elapsed_ms": round(result.elapsed_ms, 3),
    }


def ndjson_lines(result: QueryResult) -> list[str]:
    """One JSON object per row, keyed by column."""
    return [
        json.dumps(
            {c: plain(v) for c, v in zip(result.columns, row, strict=True)}, ensure_ascii=False
        )
        for row in result.rows()
    ]


def parse_limit(text: str | None, most: int = 10_000) -> int | None:
    """The ``limit`` parameter: a whole number from 1 to ``most``.

    Raises:
        UsageError: anything else.
    """
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise UsageError(f"limit must be a whole number from 1 to {most}")
    return int(text)
