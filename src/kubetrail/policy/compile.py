"""Compile a policy to one SQL ``CASE`` over the store's ``events`` columns (first match first).

The CASE yields the 0-based index of the matching rule, or NULL when none matches; levels and
omitStages are then looked up per rule, so the per-row work is one CASE. Every policy value
enters the SQL as a sqlglot string literal (escaped by sqlglot); nothing is pasted into text.

Column contract (``kubetrail.model.schema``): ``api_group`` is NULL for core, ``namespace``,
``name`` and ``subresource`` are NULL when absent, ``resource IS NOT NULL`` marks a resource
request, and ``request_uri`` carries the query string, which non-resource rules must ignore.
Two corrections keep the SQL equal to :func:`~kubetrail.policy.request.request_from_event`: a
``create`` without subresource has name ``""`` and a v1alpha1 ``api_version`` of ``group/v``
gives the group. Unlike the reference, SQL cannot parse a requestURI of an event that lacks its
objectRef (only trimmed, non-apiserver events do); such events count as non-resource requests.
"""

from __future__ import annotations

from sqlglot import exp

from kubetrail.policy.model import GroupResources, Policy, PolicyRule

DIALECTS = ("duckdb", "clickhouse")
#: Stored columns the CASE reads directly (the rest go through the ``_kt_*`` derivations).
_BASE_COLUMNS = ("username", "user_groups", "verb", "resource")


def _lit(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _in(column: exp.Expr, values: tuple[str, ...]) -> exp.Expr:
    unique = list(dict.fromkeys(values))
    if len(unique) == 1:
        return exp.EQ(this=column, expression=_lit(unique[0]))
    return exp.In(this=column, expressions=[_lit(v) for v in unique])


def _or(conds: list[exp.Expr]) -> exp.Expr:
    if any(isinstance(c, exp.Boolean) and c.this for c in conds):
        return exp.true()
    conds = [c for c in conds if not isinstance(c, exp.Boolean)]
    if not conds:
        return exp.false()
    return exp.or_(*conds) if len(conds) > 1 else conds[0]


def _and(conds: list[exp.Expr]) -> exp.Expr:
    if any(isinstance(c, exp.Boolean) and not c.this for c in conds):
        return exp.false()
    conds = [c for c in conds if not isinstance(c, exp.Boolean)]
    if not conds:
        return exp.true()
    return exp.and_(*conds) if len(conds) > 1 else conds[0]


class Columns:
    """The request attributes as SQL expressions over the ``events`` columns, for one dialect."""

    def __init__(self, dialect: str = "duckdb") -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unsupported dialect {dialect!r}")
        self.dialect = dialect
        col = exp.column
        self.user = col("username")
        self.verb = col("verb")
        self.resource = col("resource")
        sub = exp.Coalesce(this=col("subresource"), expressions=[_lit("")])
        namespace = exp.Coalesce(this=col("namespace"), expressions=[_lit("")])
        # v1alpha1 events carry the group only inside apiVersion ("apps/v1").
        group = exp.Coalesce(
            this=col("api_group"),
            expressions=[
                exp.Case()
                .when(
                    exp.Like(this=col("api_version"), expression=_lit("%/%")),
                    self._before(col("api_version"), "/"),
                )
                .else_(_lit(""))
            ],
        )
        create = exp.and_(
            exp.EQ(this=col("verb"), expression=_lit("create")),
            exp.Is(this=col("subresource"), expression=exp.null()),
        )
        name = (
            exp.Case()
            .when(create, _lit(""))
            .else_(exp.Coalesce(this=col("name"), expressions=[_lit("")]))
        )
        path = self._before(col("request_uri"), "?")
        #: Derived request attributes, computed once per row in a subquery (see ``derived``).
        self.derivations: dict[str, exp.Expr] = {
            "_kt_sub": sub,
            "_kt_ns": namespace,
            "_kt_group": group,
            "_kt_name": name,
            "_kt_path": path,
        }
        self.sub = col("_kt_sub")
        self.namespace = col("_kt_ns")
        self.group = col("_kt_group")
        self.name = col("_kt_name")
        self.path = col("_kt_path")
        self.is_resource = exp.and_(
            exp.Not(this=exp.Is(this=col("resource"), expression=exp.null())),
            exp.NEQ(this=col("resource"), expression=_lit("")),
        )
        self.is_non_resource = exp.or_(
            exp.Is(this=col("resource"), expression=exp.null()),
            exp.EQ(this=col("resource"), expression=_lit("")),
        )

    def derived(self) -> list[exp.Expr]:
        """``<expr> AS _kt_<attr>`` for each derived attribute the CASE refers to."""
        return [exp.alias_(e, name) for name, e in self.derivations.items()]

    def _before(self, column: exp.Expr, sep: str) -> exp.Expr:
        if self.dialect == "clickhouse":
            split = exp.Anonymous(this="splitByChar", expressions=[_lit(sep), column])
            # sqlglot shifts ClickHouse's 1-based index itself: 0 renders as [1].
            return exp.Bracket(this=split, expressions=[exp.Literal.number(0)])
        return exp.SplitPart(this=column, delimiter=_lit(sep), part_index=exp.Literal.number(1))

    def has_any(self, values: tuple[str, ...]) -> exp.Expr:
        fn = "hasAny" if self.dialect == "clickhouse" else "list_has_any"
        arr = exp.Array(expressions=[_lit(v) for v in dict.fromkeys(values)])
        return exp.Anonymous(this=fn, expressions=[exp.column("user_groups"), arr])

    def starts_with(self, prefix: str) -> exp.Expr:
        return exp.StartsWith(this=self.path, expression=_lit(prefix))


def _resource_pattern(c: Columns, r: str) -> exp.Expr:
    if r == "*":
        return exp.true()
    head, slash, tail = r.partition("/")
    conds: list[exp.Expr] = []
    if not slash:
        conds.append(
            _and(
                [
                    exp.EQ(this=c.resource, expression=_lit(r)),
                    exp.EQ(this=c.sub, expression=_lit("")),
                ]
            )
        )
    elif tail:  # full == r  <=>  resource == head and subresource == tail
        conds.append(
            _and(
                [
                    exp.EQ(this=c.resource, expression=_lit(head)),
                    exp.EQ(this=c.sub, expression=_lit(tail)),
                ]
            )
        )
    if r.startswith("*/") and len(r) > 2:
        conds.append(exp.EQ(this=c.sub, expression=_lit(r[2:])))
    if r.endswith("/*"):
        conds.append(exp.EQ(this=c.resource, expression=_lit(r[:-2])))
    return _or(conds)


def _entry(c: Columns, e: GroupResources) -> exp.Expr:
    conds: list[exp.Expr] = []
    if e.group != "*":
        conds.append(exp.EQ(this=c.group, expression=_lit(e.group)))
    if e.resources:
        if e.resource_names:
            conds.append(_in(c.name, e.resource_names))
        conds.append(_or([_resource_pattern(c, r) for r in e.resources]))
    return _and(conds)


def _url(c: Columns, u: str) -> exp.Expr:
    if u == "*":
        return exp.true()
    if u.endswith("*"):
        return c.starts_with(u[:-1])
    return exp.EQ(this=c.path, expression=_lit(u))


def rule_condition(rule: PolicyRule, c: Columns) -> exp.Expr:
    """The SQL condition that is true exactly when ``rule`` matches the row's request."""
    conds: list[exp.Expr] = []
    if rule.users:
        conds.append(_in(c.user, rule.users))
    if rule.user_groups:
        conds.append(
            _and(
                [
                    exp.Not(this=exp.Is(this=c.user, expression=exp.null())),
                    c.has_any(rule.user_groups),
                ]
            )
        )
    if rule.verbs:
        conds.append(_in(c.verb, rule.verbs))
    if rule.namespaces or rule.resources:
        conds.append(c.is_resource)
        if rule.namespaces:
            conds.append(_in(c.namespace, rule.namespaces))
        if rule.resources:
            conds.append(_or([_entry(c, e) for e in rule.resources]))
    elif rule.non_resource_urls:
        conds.append(c.is_non_resource)
        conds.append(_or([_url(c, u) for u in rule.non_resource_urls]))
    return _and(conds)


def compile_rule_index(policy: Policy, dialect: str = "duckdb") -> exp.Expr:
    """One ``CASE WHEN <rule 0> THEN 0 WHEN <rule 1> THEN 1 ... END`` (NULL when none matches).

    Args:
        policy: a validated policy.
        dialect: ``duckdb`` (default) or ``clickhouse``.

    Returns:
        A sqlglot expression; render it with ``.sql(dialect)``.
    """
    c = Columns(dialect)
    case = exp.Case()
    for i, rule in enumerate(policy.rules):
        cond = rule_condition(rule, c)
        if isinstance(cond, exp.Boolean) and not cond.this:
            continue  # this rule can never match
        case = case.when(cond, exp.Literal.number(i))
        if isinstance(cond, exp.Boolean):
            break  # a catch-all: later rules are unreachable
    if not case.args.get("ifs"):
        return exp.Cast(this=exp.null(), to=exp.DataType.build("INT"))
    return case


def compile_sql(policy: Policy, dialect: str = "duckdb") -> str:
    """The CASE of :func:`compile_rule_index` rendered as SQL text (it refers to the ``_kt_*``
    columns of :func:`derived_select`)."""
    return compile_rule_index(policy, dialect).sql(dialect)


def derived_select(
    columns: list[exp.Expr],
    dialect: str = "duckdb",
    where: exp.Expr | None = None,
    table: str = "events",
) -> exp.Select:
    """``SELECT <columns>, <derived attributes> FROM <table> [WHERE ...]``: the subquery a
    compiled CASE runs over."""
    c = Columns(dialect)
    names = {col.alias_or_name for col in columns}
    base = [exp.column(n) for n in _BASE_COLUMNS if n not in names]
    select = exp.select(*columns, *base, *c.derived()).from_(table)
    return select.where(where) if where is not None else select


def rule_index_query(
    policy: Policy,
    columns: list[exp.Expr],
    dialect: str = "duckdb",
    where: exp.Expr | None = None,
) -> exp.Select:
    """``SELECT <columns>, <CASE> AS rule_idx FROM (derived_select) AS e``: one row per event."""
    inner = derived_select(columns, dialect, where).subquery("e")
    outer = [exp.column(c.alias_or_name, table="e") for c in columns]
    return exp.select(*outer, exp.alias_(compile_rule_index(policy, dialect), "rule_idx")).from_(
        inner
    )
