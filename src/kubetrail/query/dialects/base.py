"""The dialect interface and the pieces every dialect shares."""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from kubetrail.query.fields import JsonStep


def like_pattern(parts: tuple[str, ...]) -> tuple[str, bool]:
    """Join wildcard-split parts into a LIKE pattern; ``\\`` escapes ``%``, ``_`` and ``\\``.

    Returns:
        The pattern and whether it contains an escape.
    """
    escaped = [p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in parts]
    pattern = "%".join(escaped)
    return pattern, any(e != p for e, p in zip(escaped, parts, strict=True))


def lambda_(var: str, body: exp.Expression) -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(var)])


class Dialect:
    """What one SQL engine needs rendered its own way.

    Attributes:
        name: the sqlglot dialect name, also ``Store.dialect``.
    """

    name = ""

    def sql(self, expression: exp.Expression, pretty: bool = False) -> str:
        return expression.sql(dialect=self.name, pretty=pretty)

    def like(self, x: exp.Expression, parts: tuple[str, ...], ci: bool) -> exp.Expression:
        """``x`` matches the wildcard pattern (``parts`` split at ``*``), anchored at both ends."""
        raise NotImplementedError

    def regex(self, x: exp.Expression, pattern: str) -> exp.Expression:
        """``x`` contains a match of the RE2 ``pattern``."""
        return exp.RegexpLike(this=x, expression=exp.Literal.string(pattern))

    def any_element(self, array: exp.Expression, var: str, cond: exp.Expression) -> exp.Expression:
        """True when ``cond`` (over the element ``var``) holds for some element of ``array``."""
        raise NotImplementedError

    def array_contains(self, array: exp.Expression, value: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def json_text(self, raw: exp.Expression, steps: tuple[JsonStep, ...]) -> exp.Expression:
        """The value at a path without ``[*]``: strings unquoted, other values as JSON text."""
        raise NotImplementedError

    def json_texts(self, raw: exp.Expression, steps: tuple[JsonStep, ...]) -> exp.Expression:
        """Every value at a path with ``[*]`` steps, as an array of text."""
        raise NotImplementedError

    def to_double(self, x: exp.Expression) -> exp.Expression:
        """``x`` as a double, or NULL when it is not a number."""
        raise NotImplementedError

    def quantile(self, x: exp.Expression, q: float) -> exp.Expression:
        """The interpolated quantile (linear, like numpy's default)."""
        raise NotImplementedError

    def time_bucket(self, ts: exp.Expression, seconds: int) -> exp.Expression:
        """The start of the ``seconds``-wide bucket holding ``ts`` (aligned to the epoch)."""
        raise NotImplementedError

    def timestamp(self, value: datetime) -> exp.Expression:
        """A naive-UTC timestamp literal."""
        raise NotImplementedError

    def array_length(self, array: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def finish(self, select: exp.Select) -> exp.Select:
        """The compiled statement, rewritten for this engine's storage when that gives the same
        rows faster (the statement unchanged by default)."""
        return select

    def byte_length(self, text: exp.Expression) -> exp.Expression:
        """The size of a string in bytes (UTF-8), not in characters."""
        raise NotImplementedError
