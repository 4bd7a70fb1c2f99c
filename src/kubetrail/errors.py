"""The one exception hierarchy of kubetrail.

Every error kubetrail raises on purpose derives from :class:`KubetrailError`; callers can catch
that one class. Third-party exceptions (DuckDB, ClickHouse, HTTP clients) are translated at the
boundary of the module that talks to them, with ``raise ... from exc``.

::

    KubetrailError
    ├── UsageError            a command or API call was given arguments it cannot use
    ├── ConfigError           a configuration file or value is invalid
    ├── EventError            one audit event (or line) was rejected; carries source, line, reason
    ├── SourceError           a source (file, stdin, webhook body) cannot be read at all
    ├── StoreError            the store failed to write or answer
    ├── QueryError            a query could not be compiled
    │   ├── ParseError        ... because its text does not parse (line, col, highlight)
    │   └── UnsupportedError  ... because a dialect cannot express a construct
    ├── PolicyError           an audit Policy is invalid
    └── RuleError             a detection rule is invalid
"""

from __future__ import annotations


class KubetrailError(Exception):
    """Root of every error kubetrail raises on purpose."""


class UsageError(KubetrailError):
    """A command or API call was given arguments it cannot use."""


class ConfigError(KubetrailError):
    """A configuration file or value is invalid."""


class EventError(KubetrailError):
    """One audit event or input line was rejected.

    Attributes:
        reason: a short, stable, human-readable reason (``missing required field 'verb'``).
        source: where the line came from (a file path, ``<stdin>``, ``webhook``).
        line: 1-based line number in ``source``, or ``None`` when not line-based.
        index: 0-based position inside an EventList document, when the line was one.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str = "",
        line: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source
        self.line = line
        self.index = index

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        if self.index is not None:
            where += f" items[{self.index}]"
        return f"{where}: {self.reason}"


class SourceError(KubetrailError):
    """A source cannot be read at all (missing file, unreadable gzip, closed stream)."""


class StoreError(KubetrailError):
    """The store failed to write or to answer a query."""


class QueryError(KubetrailError):
    """A query could not be compiled or run."""


class ParseError(QueryError):
    """The query text does not parse.

    Attributes:
        description: what is wrong.
        query: the full query text.
        line: 1-based line of the problem.
        col: 1-based column of the problem.
        highlight: the offending text.
    """

    def __init__(
        self,
        description: str,
        *,
        query: str = "",
        line: int = 1,
        col: int = 1,
        highlight: str = "",
    ) -> None:
        super().__init__(description)
        self.description = description
        self.query = query
        self.line = line
        self.col = col
        self.highlight = highlight

    def __str__(self) -> str:
        if not self.query:
            return self.description
        lines = self.query.splitlines() or [""]
        text = lines[min(self.line, len(lines)) - 1]
        caret = " " * (self.col - 1) + "^" * max(1, len(self.highlight))
        return f"{self.description} (line {self.line}, column {self.col})\n  {text}\n  {caret}"


class UnsupportedError(QueryError):
    """A dialect cannot express a construct of the query language."""


class PolicyError(KubetrailError):
    """An audit Policy document is invalid."""


class RuleError(KubetrailError):
    """A detection rule is invalid."""
