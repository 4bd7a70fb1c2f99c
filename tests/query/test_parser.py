"""Parser tests: every construct becomes the expected tree; every error points at its column."""

from __future__ import annotations

from datetime import datetime

import pytest

from kubetrail.errors import ParseError
from kubetrail.query import ast, parse
from kubetrail.query.fields import resolve


def cmp(name: str, op: str, value: ast.Value) -> ast.Compare:
    return ast.Compare(resolve(name), op, value)  # type: ignore[arg-type]


def pat(*parts: str) -> ast.Pattern:
    return ast.Pattern(parts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("verb=get", cmp("verb", "=", pat("get"))),
        ('verb="get"', cmp("verb", "=", pat("get"))),
        ("verb!=get", cmp("verb", "!=", pat("get"))),
        ("code>=400", cmp("code", ">=", 400)),
        ("code<500", cmp("code", "<", 500)),
        ("code<=500", cmp("code", "<=", 500)),
        ("latency>1.5", cmp("latency", ">", 1.5)),
        ("ns=prod-*", cmp("ns", "=", pat("prod-", ""))),
        (r'ns="a\*b"', cmp("ns", "=", pat("a*b"))),
        (r'name="say \"hi\"\\"', cmp("name", "=", pat('say "hi"\\'))),
        ("user:jenkins", cmp("user", ":", pat("jenkins"))),
        ('uri~"^/api/v1/.*secrets"', cmp("uri", "~", pat("^/api/v1/.*secrets"))),
        (r'uri~"\d+"', cmp("uri", "~", pat(r"\d+"))),
        ("redacted=TRUE", cmp("redacted", "=", True)),
        (
            'time>="2024-05-01T12:00:00+02:00"',
            cmp("time", ">=", datetime(2024, 5, 1, 10, 0, 0)),
        ),
        ("user=system:admin", cmp("user", "=", pat("system:admin"))),
        ("verb in (get, list)", ast.In(resolve("verb"), (pat("get"), pat("list")))),
        ("verb not in (get)", ast.Not(ast.In(resolve("verb"), (pat("get"),)))),
        ("exists(requestObject)", ast.Exists(resolve("requestObject"))),
        ("exec", ast.Text(pat("exec"))),
        ('"kubectl exec"', ast.Text(pat("kubectl exec"))),
        ("not verb=get", ast.Not(cmp("verb", "=", pat("get")))),
        (
            "verb=get code=200",
            ast.And((cmp("verb", "=", pat("get")), cmp("code", "=", 200))),
        ),
        (
            "verb=get AND code=200",
            ast.And((cmp("verb", "=", pat("get")), cmp("code", "=", 200))),
        ),
        (
            "verb=get or verb=list and code=200",
            ast.Or(
                (
                    cmp("verb", "=", pat("get")),
                    ast.And((cmp("verb", "=", pat("list")), cmp("code", "=", 200))),
                )
            ),
        ),
        (
            "(verb=get or verb=list) code=200",
            ast.And(
                (
                    ast.Or((cmp("verb", "=", pat("get")), cmp("verb", "=", pat("list")))),
                    cmp("code", "=", 200),
                )
            ),
        ),
    ],
)
def test_filter(text: str, expected: ast.Expr) -> None:
    assert parse(text).filter == expected


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("objectRef.resource", "resource"),
        ("objectref_resource", "resource"),
        ("responseStatus.code", "response_code"),
        ("responsestatus_code", "response_code"),
        ("user.username", "username"),
        ("username", "username"),
        ("user.groups", "user_groups"),
        ("groups", "user_groups"),
        ("sourceIPs", "source_ips"),
        ("ip", "source_ips"),
        ('annotations."authorization.k8s.io/decision"', "decision"),
        ("decision", "decision"),
        ("reason", "decision_reason"),
        ("requestURI", "request_uri"),
        ("uri", "request_uri"),
        ("ua", "user_agent"),
        ("ns", "namespace"),
        ("group", "api_group"),
        ("actor", "actor_kind"),
        ("latency", "latency_ms"),
        ("time", "request_received"),
        ("sa", "sa"),
        ("cluster", "cluster"),
        ("CODE", "response_code"),
    ],
)
def test_field_names(name: str, column: str) -> None:
    assert resolve(name).column == column


def test_json_paths() -> None:
    field = resolve("requestObject.spec.containers[*].securityContext.privileged")
    assert field.is_json and field.is_multi
    assert [s.key for s in field.path] == [
        "requestObject",
        "spec",
        "containers",
        "securityContext",
        "privileged",
    ]
    quoted = resolve('annotations."pod-security.kubernetes.io/enforce-policy"')
    assert [s.key for s in quoted.path] == [
        "annotations",
        "pod-security.kubernetes.io/enforce-policy",
    ]
    assert resolve("objectref.uid").path[1].key == "uid"


def test_stages() -> None:
    q = parse(
        "verb=delete | stats count(), dc(user) as users by user, verb | sort -count, user"
        " | head 20 | fields user, count"
    )
    stats, sort, head, fields = q.stages
    assert isinstance(stats, ast.Stats)
    assert [a.label for a in stats.aggs] == ["count", "users"]
    assert [f.column for f in stats.by] == ["username", "verb"]
    assert sort == ast.Sort(
        (ast.SortKey("count", True), ast.SortKey("user", False, resolve("user")))
    )
    assert head == ast.Head(20)
    assert isinstance(fields, ast.Fields)
    assert parse("code=403 groupby username").stages == (
        ast.Stats((ast.Agg("count", None, "count"),), (resolve("username"),)),
    )
    assert parse("| top user 5").stages == (ast.Top(resolve("user"), 5),)
    assert parse("| rare verb").stages == (ast.Top(resolve("verb"), 10, rare=True),)
    chart = parse("| timechart span=5m p95(latency) by verb").stages[0]
    assert isinstance(chart, ast.Timechart)
    assert (chart.span_seconds, chart.agg.label, chart.by) == (300, "p95(latency)", resolve("verb"))
    assert parse("| stats count by verb").stages[0] == ast.Stats(
        (ast.Agg("count", None, "count"),), (resolve("verb"),)
    )
    assert parse("| head").stages == (ast.Head(10),)


def test_stage_default() -> None:
    assert not parse("verb=get").names_stage
    assert parse("stage=ResponseStarted").names_stage
    assert parse("| stats count() by stage").names_stage


@pytest.mark.parametrize(
    ("text", "message", "col", "highlight"),
    [
        ("usr=bob", "unknown field 'usr'; did you mean 'user'?", 1, "usr"),
        (
            "verb=get objectRef.resourse=x",
            "did you mean 'objectRef.resource'?",
            10,
            "objectRef.resourse",
        ),
        ("code=4o4", "bad number '4o4'", 6, "4o4"),
        ("latency>fast", "bad number 'fast'", 9, "fast"),
        ("redacted=yes", "true or false", 10, "yes"),
        ("time>yesterday", "bad time 'yesterday'", 6, "yesterday"),
        ("code:40", "':' needs a text field", 6, "40"),
        ("code=4*", "wildcards need a text field", 6, "4*"),
        ("user<a*", "wildcards only work with", 6, "a*"),
        ('uri~"("', "bad regular expression", 5, '"("'),
        ('uri~"(?=a)"', "look-around", 5, '"(?=a)"'),
        (r'name="a\qb"', "unknown escape", 6, r'"a\qb"'),
        ('verb="get', "unterminated string", 6, '"get'),
        ("verb=", "the query ends too early; expected a quoted string, a value", 6, " "),
        ("verb=get and", "ends too early", 13, " "),
        ("(verb=get", "expected ')'", 10, " "),
        (
            "verb=get | stat count()",
            "unknown pipe command 'stat'; did you mean 'stats'?",
            12,
            "stat",
        ),
        ("| stats cnt()", "unknown function 'cnt'; did you mean 'count'?", 9, "cnt"),
        ("| stats avg()", "avg() needs a field", 9, "avg"),
        ("| stats sum(user)", "sum() needs a numeric field", 13, "user"),
        ("| head 0", "bad number '0'", 8, "0"),
        ("| head ten", "bad number 'ten'", 8, "ten"),
        ("| timechart span=7m count()", "divide a day", 13, "span=7m"),
        ("| timechart span=5 count()", "bad span", 13, "span=5"),
        ("verb=get |", "ends too early", 11, " "),
        ("verb == get", "unexpected '='", 7, "="),
        ("foo.bar=1", "unknown field 'foo.bar'", 1, "foo.bar"),
    ],
)
def test_errors(text: str, message: str, col: int, highlight: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert message in err.description
    assert (err.line, err.col, err.highlight) == (1, col, highlight)
    assert err.query == text
    rendered = str(err).splitlines()
    assert rendered[1] == f"  {text}"
    assert rendered[2] == "  " + " " * (col - 1) + "^" * len(highlight)


def test_error_on_second_line() -> None:
    with pytest.raises(ParseError) as info:
        parse("verb=get\n  and usr=bob")
    assert (info.value.line, info.value.col) == (2, 7)
