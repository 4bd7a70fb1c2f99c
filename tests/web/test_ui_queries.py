"""Building query text from clicked values, time ranges, passwords and web users' config."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kubetrail.cli import main
from kubetrail.config import parse_config
from kubetrail.errors import ConfigError, UsageError
from kubetrail.query import compile_predicate
from kubetrail.web.overview import STATUS, WIDGETS
from kubetrail.web.passwords import hash_password, is_password_hash, verify_password
from kubetrail.web.queries import and_terms, quote, split_filter, term, time_range

NOW = datetime(2026, 1, 1, 12, 0)


def _row(**values: object) -> dict[str, object]:
    return {"is_final": True, **values}


@settings(deadline=None, max_examples=60)  # the machine is shared: no per-example deadline
@given(st.text(min_size=1, max_size=30))
def test_term_matches_exactly_the_clicked_value(value: str) -> None:
    matches = compile_predicate(term("user", value))
    assert matches(_row(username=value))
    assert not matches(_row(username=value + "x"))
    assert not matches(_row(username="x" + value))


def test_quote_escapes_every_special_character() -> None:
    assert quote('a"b\\c*d\ne') == '"a\\"b\\\\c\\*d\\ne"'
    assert quote(403) == "403" and quote(True) == "true"
    assert term("user", None) == "not exists(user)"
    assert compile_predicate(term("user", None))(_row(username=None))


def test_and_terms_keeps_or_inside_parentheses() -> None:
    assert and_terms("a=1 or b=2", "c=3") == "(a=1 or b=2) c=3"
    assert and_terms("", "c=3") == "c=3"


def test_split_filter_ignores_pipes_in_quotes() -> None:
    assert split_filter('uri:"a|b" verb=get | top user') == ('uri:"a|b" verb=get', "| top user")
    assert split_filter("| stats count()") == ("", "| stats count()")
    assert split_filter("exec") == ("exec", "")


def test_time_range() -> None:
    last = time_range({"range": "1h"}, now=NOW)
    assert last.start == NOW - timedelta(hours=1) and last.end is None and last.span() == "30s"
    assert time_range({}, now=NOW).key == "24h"
    # A relative range starts on the whole minute before (ClickHouse then counts its chart
    # from the per-minute projection); its chart keeps the buckets of the length asked for.
    odd = time_range({"range": "24h"}, now=NOW + timedelta(seconds=59, microseconds=7))
    assert odd.start == NOW - timedelta(hours=24) and odd.now == NOW + timedelta(seconds=59.000007)
    for key, span in (("15m", "10s"), ("1h", "30s"), ("24h", "15m"), ("7d", "2h")):
        for late in (0, 1, 59):
            later = NOW + timedelta(seconds=late, microseconds=late)
            assert time_range({"range": key}, now=later).span() == span, (key, late)
    custom = time_range({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"})
    assert custom.key == "custom" and custom.span() == "15m"
    assert custom.params() == {
        "range": "custom",
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
    }
    assert time_range({"range": "all"}).start is None
    with pytest.raises(UsageError):
        time_range({"range": "forever"})
    with pytest.raises(UsageError):
        time_range({"from": "yesterday"})


def test_widget_links_parse_and_name_the_row() -> None:
    for widget in (*WIDGETS, STATUS):
        row = {f: 403 if f == "code" else 'x"y*' for f in widget.link_fields}
        assert compile_predicate(widget.link_query(row)) is not None
    users = WIDGETS[0]
    matches = compile_predicate(users.link_query({"user": 'x"y*'}))
    assert matches(_row(username='x"y*')) and not matches(_row(username='x"yz'))


def test_password_hashes() -> None:
    stored = hash_password("correct horse")
    assert is_password_hash(stored) and stored != hash_password("correct horse")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("x", "sha256:abc")


def test_users_config() -> None:
    stored = hash_password("pw")
    config = parse_config(
        {
            "server": {
                "users": [
                    {"name": "vera", "role": "viewer", "password_hash": stored},
                    {"name": "ada", "role": "admin", "token_sha256": ["a" * 64]},
                ]
            }
        }
    )
    assert [(u.name, u.role) for u in config.server.users] == [("vera", "viewer"), ("ada", "admin")]
    for bad, message in [
        ({"name": "x", "role": "root"}, "expected 'viewer' or 'admin'"),
        ({"name": "x", "password_hash": "plain"}, "not a scrypt hash"),
        ({"name": "x", "token_sha256": ["abc"]}, "64 lowercase hex"),
        ({"name": ""}, "empty or listed twice"),
        ({"name": "x", "passwd": "y"}, "did you mean 'password_hash'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config({"server": {"users": [bad]}})


def test_hash_password_command() -> None:
    result = CliRunner().invoke(main, ["certs", "hash-password"], input="s3cret\n")
    assert result.exit_code == 0
    assert verify_password("s3cret", result.output.strip())
    assert CliRunner().invoke(main, ["certs", "hash-password"], input="\n").exit_code == 2


def test_shared_panels_equal_each_widgets_own_query(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kubetrail.config import ServerConfig
    from kubetrail.query import run_query
    from kubetrail.store import open_store
    from kubetrail.web import bootstrap
    from kubetrail.web.overview import SHARED, build_overview

    config = ServerConfig(db=str(tmp_path / "o.duckdb"), demo_events=3000)
    bootstrap.load_demo(config)
    window = time_range({"range": "all"})
    with open_store(config.db, read_only=True) as store:
        overview = build_overview(store, window, None)
        for key in SHARED:
            panel = overview.panels[key]
            own = run_query(store, panel.widget.query)
            expected = [dict(zip(own.columns, row, strict=True)) for row in own.rows()]
            got = [{k: v for k, v in row.items() if k != "_q"} for row in panel.rows]
            if key == "status":  # the widget's own query orders by code
                got.sort(key=lambda r: r["code"])
            if key in ("denied", "actions"):  # `sort -count` leaves ties in any order
                expected.sort(key=lambda r: (-r["count"], str(r)))
                got.sort(key=lambda r: (-r["count"], str(r)))
            assert got and len(got) == len(expected), key
            for a, b in zip(got, expected, strict=True):
                assert a.keys() == b.keys()
                assert all(a[k] == pytest.approx(b[k]) for k in a), (key, a, b)
            for row in panel.rows[:3]:
                again = run_query(store, row["_q"] + " | stats count()")
                assert again.rows()[0][0] == row["count"]


def test_script_json_cannot_close_its_element() -> None:
    import json

    from kubetrail.web.ui_pages import script_json

    value = {"x": ["</script><script>alert(1)</script>", "a & b"]}
    text = script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value
