"""Query text -> expression tree (:mod:`kubetrail.query.ast`).

Lark (LALR(1), contextual lexer, ``grammar.lark``) turns the text into a parse tree; the
``Parser`` then resolves fields, checks every value against its field's type and builds the
immutable AST. Every problem becomes a :class:`~kubetrail.errors.ParseError` that points at the
offending column.
"""

from __future__ import annotations

import difflib
import functools
import re
from functools import cache
from importlib import resources

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from kubetrail.errors import ParseError
from kubetrail.query import ast
from kubetrail.query.fields import Field, UnknownFieldError, resolve
from kubetrail.query.values import BadValue, check_regex, convert, parse_span, regex_text, unescape

#: Aggregate functions and whether they take a field.
FUNCTIONS: dict[str, bool] = {
    "count": False,
    "dc": True,
    "min": True,
    "max": True,
    "avg": True,
    "sum": True,
    "p50": True,
    "p90": True,
    "p95": True,
    "p99": True,
}
_NUMERIC_FUNCS = {"avg", "sum", "p50", "p90", "p95", "p99"}
STAGE_NAMES = ("stats", "groupby", "top", "rare", "timechart", "sort", "head", "fields")

#: How to name expected terminals in messages.
_EXPECTED_NAMES: dict[str, str] = {
    "FIELD": "a field",
    "PATH": "a field",
    "WORD": "a search term",
    "STRING": "a quoted string",
    "VALUE": "a value",
    "OP": "an operator",
    "TILDE": "'~'",
    "NOT": "'not'",
    "EXISTS": "'exists('",
    "FUNC": "a function",
    "COUNT": "'count'",
    "NUMBER": "a number",
    "SPAN": "'span='",
    "NAME": "a name",
    "MINUS": "'-'",
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_COMMA": "','",
    "_PIPE": "'|'",
    "_AND": "'and'",
    "_OR": "'or'",
    "_IN": "'in'",
    "_BY": "'by'",
    "_AS": "'as'",
    "$END": "the end of the query",
}


@cache
def _lark() -> Lark:
    grammar = resources.files("kubetrail.query").joinpath("grammar.lark").read_text("utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=True,
        propagate_positions=True,
    )


def parse(text: str) -> ast.Query:
    """Parse query text into a checked expression tree.

    Args:
        text: the query, e.g. ``verb=delete ns=prod-* | stats count() by user``.

    Returns:
        The :class:`~kubetrail.query.ast.Query`.

    Raises:
        ParseError: the text does not parse, names an unknown field or function, or gives a
            value its field cannot take. ``str(error)`` shows the query with a caret.
    """
    return _parse(text)


# Dashboards and the CLI run the same texts again and again, and the tree is immutable (frozen
# dataclasses and tuples), so parsed queries are kept; errors are raised again, not kept.
@functools.lru_cache(maxsize=512)
def _parse(text: str) -> ast.Query:
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    return Parser(text).build(tree)


class Parser:
    """Builds a :class:`~kubetrail.query.ast.Query` from lark's parse tree.

    Args:
        text: the query text, for error messages.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.names_stage = False
        self.aggregated = False

    def error(self, message: str, token: Token) -> ParseError:
        return ParseError(
            message,
            query=self.text,
            line=token.line or 1,
            col=token.column or 1,
            highlight=str(token),
        )

    def build(self, tree: Tree) -> ast.Query:
        filter_tree, *stage_trees = tree.children
        expr = None if filter_tree is None else self._parse_expr(filter_tree)
        stages = []
        for stage_tree in stage_trees:
            stages.append(self._parse_stage(stage_tree))
            self.aggregated = self.aggregated or isinstance(stages[-1], ast.AGGREGATIONS)
        return ast.Query(expr, tuple(stages), self.names_stage, self.text)

    # -- fields and values ---------------------------------------------------------------

    def _parse_field(self, token: Token) -> Field:
        try:
            field = resolve(str(token))
        except UnknownFieldError as exc:
            raise self.error(str(exc), token) from None
        if field.column == "stage":
            self.names_stage = True
        return field

    def _parse_value(self, tree: Tree, field: Field, op: str) -> ast.Value:
        token: Token = tree.children[0]
        raw = str(token)
        body = raw[1:-1] if token.type == "STRING" else raw
        try:
            if op == "~":
                pattern = ast.Pattern((regex_text(body),))
                check_regex(pattern.parts[0])
            else:
                pattern = unescape(body)
            return convert(pattern, field, op)
        except BadValue as exc:
            raise self.error(str(exc), token) from None

    # -- filter --------------------------------------------------------------------------

    def _parse_expr(self, tree: Tree) -> ast.Expr:
        return getattr(self, f"_parse_{tree.data}")(tree)

    def _parse_or_expr(self, tree: Tree) -> ast.Expr:
        return ast.Or(tuple(self._parse_expr(t) for t in tree.children))

    def _parse_and_expr(self, tree: Tree) -> ast.Expr:
        return ast.And(tuple(self._parse_expr(t) for t in tree.children))

    def _parse_negation(self, tree: Tree) -> ast.Expr:
        return ast.Not(self._parse_expr(tree.children[1]))

    def _parse_compare(self, tree: Tree) -> ast.Expr:
        field_token, op_token, value_tree = tree.children
        field = self._parse_field(field_token)
        op = str(op_token)
        value = self._parse_value(value_tree, field, op)
        span = ast.Span(field_token.line or 1, field_token.column or 1, str(field_token))
        return ast.Compare(field, op, value, span)  # type: ignore[arg-type]

    def _parse_in_list(self, tree: Tree) -> ast.Expr:
        field_token, negated, *value_trees = tree.children
        field = self._parse_field(field_token)
        values = tuple(self._parse_value(t, field, "=") for t in value_trees)
        span = ast.Span(field_token.line or 1, field_token.column or 1, str(field_token))
        node: ast.Expr = ast.In(field, values, span)
        return ast.Not(node) if negated is not None else node

    def _parse_exists(self, tree: Tree) -> ast.Expr:
        token = tree.children[1]
        return ast.Exists(self._parse_field(token))

    def _parse_text(self, tree: Tree) -> ast.Expr:
        token: Token = tree.children[0]
        raw = str(token)
        try:
            pattern = unescape(raw[1:-1] if token.type == "STRING" else raw)
        except BadValue as exc:
            raise self.error(str(exc), token) from None
        return ast.Text(pattern, ast.Span(token.line or 1, token.column or 1, raw))

    # -- stages --------------------------------------------------------------------------

    def _parse_stage(self, tree: Tree) -> ast.Stage:
        return getattr(self, f"_parse_{tree.data}_stage")(tree)

    def _parse_paths(self, tree: Tree | None) -> tuple[Field, ...]:
        return () if tree is None else tuple(self._parse_field(t) for t in tree.children)

    def _parse_agg(self, tree: Tree) -> ast.Agg:
        if len(tree.children) == 2:  # bare `count [as name]`
            token, alias = tree.children
            return ast.Agg("count", None, str(alias) if alias else "count")
        token, path, alias = tree.children
        func = str(token).lower()
        if func not in FUNCTIONS:
            near = difflib.get_close_matches(func, list(FUNCTIONS), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise self.error(f"unknown function '{token}'{hint}", token)
        field = None if path is None else self._parse_field(path)
        if FUNCTIONS[func] and field is None:
            raise self.error(f"{func}() needs a field, e.g. {func}(latency)", token)
        if not FUNCTIONS[func] and field is not None and func != "count":
            raise self.error(f"{func}() takes no field", token)
        if (
            field is not None
            and func in _NUMERIC_FUNCS
            and field.type
            not in (
                "int",
                "float",
                "json",
            )
        ):
            raise self.error(f"{func}() needs a numeric field, not '{field.text}'", path)
        if field is not None and func in ("min", "max") and field.type == "strings":
            raise self.error(f"{func}() needs a single-valued field, not '{field.text}'", path)
        label = "count" if field is None else f"{func}({field.text})"
        return ast.Agg(func, field, str(alias) if alias else label)

    def _parse_stats_stage(self, tree: Tree) -> ast.Stage:
        *agg_trees, by_tree = tree.children
        aggs = tuple(self._parse_agg(t) for t in agg_trees)
        by = self._parse_paths(by_tree)
        labels = [a.label for a in aggs] + [f.text for f in by]
        if len(set(labels)) != len(labels):
            raise self.error(
                "two output columns have the same name; use 'as'", tree.children[0].children[0]
            )
        return ast.Stats(aggs, by)

    def _parse_groupby_stage(self, tree: Tree) -> ast.Stage:
        return ast.Stats((ast.Agg("count", None, "count"),), self._parse_paths(tree.children[0]))

    def _parse_count(self, token: Token | None, default: int) -> int:
        if token is None:
            return default
        if not re.fullmatch(r"[0-9]{1,9}", str(token)) or int(str(token)) == 0:
            raise self.error(f"bad number '{token}': expected a positive whole number", token)
        return int(str(token))

    def _parse_top_stage(self, tree: Tree, rare: bool = False) -> ast.Stage:
        path, number = tree.children
        return ast.Top(self._parse_field(path), self._parse_count(number, 10), rare)

    def _parse_rare_stage(self, tree: Tree) -> ast.Stage:
        return self._parse_top_stage(tree, rare=True)

    def _parse_timechart_stage(self, tree: Tree) -> ast.Stage:
        span_token, agg_tree, by = tree.children
        try:
            seconds = parse_span(str(span_token).split("=", 1)[1].strip())
        except BadValue as exc:
            raise self.error(str(exc), span_token) from None
        by_field = None if by is None else self._parse_field(by)
        return ast.Timechart(seconds, self._parse_agg(agg_tree), by_field)

    def _parse_sort_stage(self, tree: Tree) -> ast.Stage:
        keys = []
        for key in tree.children:
            minus, name, *rest = key.children
            descending = minus is not None
            if rest:  # func(path) form: refers to an aggregate's label
                func, path = str(name).lower(), rest[0]
                label = "count" if path is None else f"{func}({path})"
                keys.append(ast.SortKey(label, descending))
                continue
            field = None
            try:
                field = resolve(str(name))
            except UnknownFieldError:
                field = None
            keys.append(ast.SortKey(str(name), descending, field))
        return ast.Sort(tuple(keys))

    def _parse_head_stage(self, tree: Tree) -> ast.Stage:
        return ast.Head(self._parse_count(tree.children[0], 10))

    def _parse_fields_stage(self, tree: Tree) -> ast.Stage:
        tokens = tree.children[0].children
        if not self.aggregated:
            return ast.Fields(tuple(map(str, tokens)), tuple(map(self._parse_field, tokens)))
        fields = []
        for token in tokens:
            try:
                fields.append(resolve(str(token)))
            except UnknownFieldError:
                fields.append(None)
        return ast.Fields(tuple(map(str, tokens)), tuple(fields))


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_EXPECTED_NAMES.get(e, f"'{e.lower().strip('_')}'") for e in expected})
    if len(names) > 6:
        names = [*names[:6], "..."]
    return ", ".join(names)


def _syntax_error(text: str, exc: UnexpectedInput) -> ParseError:
    line, col = exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1
    if isinstance(exc, UnexpectedCharacters):
        rest = text[exc.pos_in_stream :]
        word = re.match(r"[^\s|(),]+|.", rest)
        highlight = word.group(0) if word else rest[:1]
        expected = set(exc.allowed or ())
    else:
        assert isinstance(exc, UnexpectedToken)
        token = exc.token
        expected = set(exc.expected or ())
        if token.type == "$END":
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            message = f"the query ends too early; expected {_describe_expected(expected)}"
            return ParseError(message, query=text, line=line, col=col, highlight=" ")
        highlight = str(token)
    if highlight.startswith('"') and "STRING" in expected:
        message = "unterminated string: a closing '\"' is missing"
    elif "_STATS" in expected:
        near = difflib.get_close_matches(highlight.lower(), STAGE_NAMES, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        message = f"unknown pipe command '{highlight}'{hint}"
    elif "FUNC" in expected and "COUNT" in expected:
        message = f"expected a function call such as count() or dc(user), not '{highlight}'"
    else:
        message = f"unexpected '{highlight}'; expected {_describe_expected(expected)}"
    return ParseError(message, query=text, line=line, col=col, highlight=highlight)
