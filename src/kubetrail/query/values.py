"""Checking and converting the values of a query: escapes, wildcards, numbers, times, spans.

Every function raises :class:`BadValue` with a message for the user; the parser turns it into
a :class:`~kubetrail.errors.ParseError` that points at the value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from kubetrail.query.ast import Pattern, Value
from kubetrail.query.fields import Field

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPAN = re.compile(r"([0-9]{1,6})(s|m|h|d)")
_SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Regular-expression constructs RE2 (DuckDB, ClickHouse) does not support.
_NOT_RE2 = re.compile(r"\(\?[=!]|\(\?<[=!]|\(\?P=|\\[1-9]")


class BadValue(Exception):
    """A value its field cannot take."""


def unescape(text: str) -> Pattern:
    r"""Resolve ``\\ \" \* \n \t \r`` escapes and split at unescaped ``*`` wildcards."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                raise BadValue("a value cannot end with a lone '\\'")
            nxt = text[i + 1]
            if nxt == "*":
                buf.append("*")
            elif nxt in _ESCAPES:
                buf.append(_ESCAPES[nxt])
            else:
                raise BadValue(f"unknown escape '\\{nxt}' (use \\\\ for a backslash)")
            i += 2
            continue
        if ch == "*":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return Pattern(tuple(parts))


def regex_text(text: str) -> str:
    r"""The text of a ``~"..."`` value: only ``\"`` is an escape, other backslashes stay."""
    return text.replace('\\"', '"')


def check_regex(pattern: str) -> None:
    """Reject regular expressions that Python cannot compile or RE2 does not support."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise BadValue(f"bad regular expression: {exc}") from None
    if _NOT_RE2.search(pattern):
        raise BadValue("look-around and back-references are not supported (RE2 syntax)")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (or a date) into a naive UTC ``datetime``."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(f"bad time '{text}': expected RFC 3339, e.g. 2024-05-01T12:00:00Z") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_span(text: str) -> int:
    """Parse a timechart span (``30s``, ``5m``, ``1h``, ``1d``) into seconds.

    Spans must divide a day evenly, so buckets start at the same instants in every engine.
    """
    match = _SPAN.fullmatch(text)
    if not match:
        raise BadValue(f"bad span '{text}': expected a number and s, m, h or d, e.g. 5m")
    seconds = int(match.group(1)) * _SPAN_UNITS[match.group(2)]
    if seconds == 0 or ((seconds > 86400 or 86400 % seconds) and seconds != 86400):
        raise BadValue(f"bad span '{text}': a span must divide a day evenly (1s ... 1d)")
    return seconds


def convert(pattern: Pattern, field: Field, op: str) -> Value:
    """Check ``field op value`` and return the value in the field's type."""
    kind = field.type
    if kind in ("string", "strings", "json"):
        if op in ("<", "<=", ">", ">=") and pattern.has_wildcard:
            raise BadValue(f"wildcards only work with =, !=, : and in, not with {op}")
        return pattern
    if op in (":", "~"):
        raise BadValue(f"'{op}' needs a text field; '{field.text}' is {kind}: use = or <, >")
    if pattern.has_wildcard:
        raise BadValue(f"wildcards need a text field; '{field.text}' is {kind}")
    text = pattern.text
    if kind == "int":
        if not _INT.fullmatch(text) or abs(int(text)) > 2**63 - 1:
            raise BadValue(f"bad number '{text}': '{field.text}' takes whole numbers")
        return int(text)
    if kind == "float":
        if not _FLOAT.fullmatch(text) or not math.isfinite(float(text)):
            raise BadValue(f"bad number '{text}' for '{field.text}'")
        return float(text)
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise BadValue(f"bad value '{text}': '{field.text}' is true or false")
        return text.lower() == "true"
    return parse_time(text)
