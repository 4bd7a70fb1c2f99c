"""``kubetrail rules``: list, validate, test, check and backtest detection rules."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..errors import RuleError, UsageError
from ..query.runner import parse_duration
from .options import fail, handle_errors, print_json

_FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A table, or JSON (one object per alert or rule, one per line).",
)


def _rule_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--config",
                "config_path",
                type=click.Path(dir_okay=False),
                help="Config file: its detect section (rule_dirs, disabled, variables).",
            ),
            click.option(
                "--rules",
                "rule_dirs",
                multiple=True,
                type=click.Path(exists=True),
                help="A directory or file of rules (repeatable).",
            ),
            click.option(
                "--var",
                "variables",
                multiple=True,
                metavar="NAME=V1,V2",
                help="Set a rule variable (repeatable).",
            ),
            click.option("--no-builtin", is_flag=True, help="Leave out the built-in pack."),
        ]
    ):
        func = option(func)
    return func


def _load(
    config_path: str | None,
    rule_dirs: tuple[str, ...],
    variables: tuple[str, ...],
    no_builtin: bool,
) -> Any:
    from ..detect.environments import environment_clusters
    from ..detect.loader import load_ruleset

    full = load_config(config_path)
    detect = full.detect
    values = detect.variable_values()
    for item in variables:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--var {item!r}: expected NAME=V1,V2")
        values[name] = [v for v in text.split(",") if v]
    return load_ruleset(
        [*detect.rule_dirs, *rule_dirs],
        builtin=detect.builtin and not no_builtin,
        disabled=detect.disabled,
        variables=values,
        environments=environment_clusters(full.server) if config_path else None,
    )


@click.group()
def rules() -> None:
    """Detection rules: list, validate, test on events, check against a policy, backtest."""


@rules.command("list")
@_rule_options
@_FORMAT
@handle_errors
def list_rules(
    config_path: str | None,
    rule_dirs: tuple[str, ...],
    variables: tuple[str, ...],
    no_builtin: bool,
    output_format: str,
) -> None:
    """List the rules: id, kind, severity, ATT&CK tags, enabled, title."""
    ruleset = _load(config_path, rule_dirs, variables, no_builtin)
    if output_format == "json":
        for r in ruleset.rules:
            print_json(
                {
                    "id": r.id,
                    "title": r.title,
                    "severity": r.severity,
                    "kind": r.kind,
                    "tags": list(r.tags),
                    "enabled": r.enabled,
                    "source": r.source,
                }
            )
        return
    table = Table(box=None)
    for column in ("id", "kind", "severity", "tags", "enabled", "title"):
        table.add_column(column)
    for r in ruleset.rules:
        table.add_row(
            r.id, r.kind, r.severity, ",".join(r.tags), "yes" if r.enabled else "no", r.title
        )
    Console(width=200).print(table)


@rules.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=V1,V2",
    help="Set a rule variable (repeatable).",
)
@handle_errors
def validate(paths: tuple[str, ...], variables: tuple[str, ...]) -> None:
    """Check rule files (and the built-in pack): schema, filters, fields, variables.

    Exit status: 0 when every rule is valid, 1 otherwise (the message names file, rule, key).
    """
    for path in paths:
        if not Path(path).exists():
            fail(f"{path}: no such file or directory", 2)
    try:
        ruleset = _load(None, paths, variables, False)
    except RuleError as exc:
        fail(str(exc))
        return
    click.echo(
        f"{len(ruleset.rules)} rules valid ({sum(r.enabled for r in ruleset.rules)} enabled)"
    )


@rules.command("test")
@click.argument("more_events", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--events",
    "events",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Audit events to test on (JSON lines, EventLists, .gz; repeatable; further "
    "files may follow as arguments).",
)
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Test on a store.")
@click.option("--since", help="With --db: the window to test, e.g. 24h, 7d.")
@click.option("--rule", "rule_id", help="Only this rule.")
@click.option(
    "--cluster", default="default", show_default=True, help="Cluster name given to --events files."
)
@_rule_options
@_FORMAT
@handle_errors
def test_rules(
    more_events: tuple[str, ...],
    events: tuple[str, ...],
    db_path: str | None,
    since: str | None,
    rule_id: str | None,
    cluster: str,
    config_path: str | None,
    rule_dirs: tuple[str, ...],
    variables: tuple[str, ...],
    no_builtin: bool,
    output_format: str,
) -> None:
    """Print the alerts the rules raise for some events (nothing is stored or sent).

    \b
    kubetrail rules test --events audit.log [more.log ...] [--rule ID] [--format json]
    kubetrail rules test --db audit.duckdb --since 24h

    Exit status: 0 (whether or not alerts were raised), 1 on errors, 2 on usage errors.
    """
    from ..detect.replay import replay
    from ..pipeline import ingest_paths
    from ..store import open_store
    from ..store.location import is_url, open_location

    files = [*events, *more_events]
    if more_events and not events:
        fail("event files are given with --events FILE [FILE...]", 2)
    if bool(files) == bool(db_path):
        fail("give either --events FILE... or --db PATH --since D", 2)
    if db_path and not since:
        fail("--db needs --since (e.g. --since 24h)", 2)
    selected = _selected(_load(config_path, rule_dirs, variables, no_builtin), rule_id)
    if db_path:
        if not is_url(db_path) and not Path(db_path).exists():
            fail(f"{db_path}: no such store", 2)
        store = open_location(db_path, read_only=True)
        end = datetime.now(UTC).replace(tzinfo=None)
        start = end - _duration(since)
    else:
        for f in files:
            if f != "-" and not Path(f).exists():
                fail(f"{f}: no such file", 2)
        store = open_store(":memory:")
        ingest_paths(store, files, cluster)
        stats = store.stats()
        if stats.first is None or stats.last is None:
            store.close()
            _print_alerts([], output_format)
            return
        start, end = stats.first, stats.last + timedelta(microseconds=1)
    try:
        alerts = replay(store, selected, start, end)
    finally:
        store.close()
    _print_alerts([_alert_json(a) for a in alerts], output_format)


def _selected(ruleset: Any, rule_id: str | None) -> list[Any]:
    if rule_id is None:
        return ruleset.enabled
    rule = ruleset.get(rule_id)
    if rule is None:
        near = [r.id for r in ruleset.rules if rule_id in r.id][:3]
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        fail(f"no rule has the id {rule_id!r}{hint}", 2)
    return [rule]


def _duration(text: str | None) -> timedelta:
    try:
        return parse_duration(text or "")
    except UsageError as exc:
        fail(str(exc), 2)
        raise


def _alert_json(a: Any) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "title": a.title,
        "severity": a.severity,
        "tags": list(a.tags),
        "cluster": a.cluster,
        "key": a.key,
        "message": a.message,
        "first_seen": _time(a.first),
        "last_seen": _time(a.last),
        "count": a.count,
        "auditIDs": list(a.audit_ids),
    }


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _print_alerts(alerts: list[dict[str, Any]], output_format: str) -> None:
    if output_format == "json":
        for a in alerts:
            click.echo(json.dumps(a, ensure_ascii=False))
        return
    if not alerts:
        click.echo("no alerts")
        return
    table = Table(box=None)
    for column in ("severity", "rule", "cluster", "count", "first seen", "message"):
        table.add_column(column, overflow="fold")
    for a in alerts:
        table.add_row(
            a["severity"],
            a["rule"],
            a["cluster"],
            str(a["count"]),
            a["first_seen"][:19],
            a["message"],
        )
    Console(width=200).print(table)
    click.echo(f"{len(alerts)} alert(s)")


@rules.command()
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The audit Policy file the API servers use.",
)
@_rule_options
@_FORMAT
@handle_errors
def check(
    policy_path: str,
    config_path: str | None,
    rule_dirs: tuple[str, ...],
    variables: tuple[str, ...],
    no_builtin: bool,
    output_format: str,
) -> None:
    """Warn about every enabled rule that an audit policy makes blind.

    Exit status: 0 (warnings are printed), 1 when the policy or a rule is invalid.
    """
    from ..detect.coverage import check_rules
    from ..policy import load_policy_file

    if not Path(policy_path).exists():
        fail(f"{policy_path}: no such file", 2)
    ruleset = _load(config_path, rule_dirs, variables, no_builtin)
    found = check_rules(load_policy_file(policy_path), ruleset.rules)
    if output_format == "json":
        for b in found:
            print_json(
                {
                    "rule": b.rule.id,
                    "verb": b.request.verb,
                    "resource": b.request.resource,
                    "subresource": b.request.subresource,
                    "group": b.request.group,
                    "level": b.level,
                    "needs": b.rule.needs.level,
                    "omitted_stages": list(b.missing_stages),
                    "warning": b.message,
                }
            )
        return
    for b in found:
        click.echo(f"warning: {b.message}")
    blind = len({b.rule.id for b in found})
    click.echo(
        f"{blind} of {len(ruleset.enabled)} enabled rules are blind or partly blind "
        f"under {policy_path}"
    )


@rules.command()
@click.option(
    "--db", "db_path", required=True, type=click.Path(dir_okay=False), help="The store to replay."
)
@click.option("--since", default="30d", show_default=True, help="How far back, e.g. 7d, 30d.")
@click.option("--rule", "rule_id", help="Only this rule.")
@_rule_options
@_FORMAT
@handle_errors
def backtest(
    db_path: str,
    since: str,
    rule_id: str | None,
    config_path: str | None,
    rule_dirs: tuple[str, ...],
    variables: tuple[str, ...],
    no_builtin: bool,
    output_format: str,
) -> None:
    """Show how often each rule would have fired per day over stored history.

    Use it to tune noise (variables, except filters) before enabling a rule.
    """
    from ..detect.replay import backtest as run_backtest
    from ..store.location import is_url, open_location

    if not is_url(db_path) and not Path(db_path).exists():
        fail(f"{db_path}: no such store", 2)
    window = _duration(since)
    ruleset = _load(config_path, rule_dirs, variables, no_builtin)
    selected = _selected(ruleset, rule_id) if rule_id else list(ruleset.rules)
    end = datetime.now(UTC).replace(tzinfo=None)
    start = end - window
    store = open_location(db_path, read_only=True)
    try:
        results = run_backtest(store, selected, start, end)
    finally:
        store.close()
    if output_format == "json":
        for r in results:
            print_json(
                {
                    "rule": r.rule.id,
                    "severity": r.rule.severity,
                    "enabled": r.rule.enabled,
                    "alerts": r.alerts,
                    "events": r.events,
                    "skipped": r.skipped,
                    "days": {
                        d.isoformat(): {"alerts": c.alerts, "events": c.events}
                        for d, c in sorted(r.days.items())
                    },
                }
            )
        return
    days = max(1, window.days or 1)
    table = Table(box=None)
    for column in (
        "rule",
        "severity",
        "alerts",
        "events",
        "days fired",
        "alerts/day",
        "busiest day",
    ):
        table.add_column(column)
    for r in sorted(results, key=lambda r: -r.alerts):
        busiest = max(r.days.items(), key=lambda kv: kv[1].alerts, default=None)
        table.add_row(
            r.rule.id,
            r.rule.severity,
            str(r.alerts),
            str(r.events),
            str(len(r.days)),
            f"{r.alerts / days:.1f}",
            r.skipped or (f"{busiest[0]} ({busiest[1].alerts})" if busiest else "-"),
        )
    Console(width=200, file=sys.stdout).print(table)
