"""``kubetrail query``: run a query-language query on the store and print the answer."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..errors import QueryError, UsageError
from ..query.compiler import compile_query
from ..query.runner import QueryResult, parse_duration, parse_instant, run_query
from ..store.location import is_url, open_location
from .options import db_option, fail, handle_errors


@click.command()
@click.argument("text", metavar="QUERY")
@db_option
@click.option("--since", help="Only requests received in this window, e.g. 15m, 24h, 7d.")
@click.option("--from", "time_from", help="Only requests received at or after (RFC 3339).")
@click.option("--to", "time_to", help="Only requests received before (RFC 3339).")
@click.option("--cluster", help="Only events of this cluster.")
@click.option(
    "--environment",
    "--env",
    "environment",
    help="Only events of the clusters of this environment (server.clusters[] of --config).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML config that maps clusters to environments (for --environment).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "ndjson", "csv"]),
    default="table",
    show_default=True,
    help="A terminal table, one JSON object, one JSON object per row, or CSV.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="The most rows to print (default 100 for event listings, all for aggregations).",
)
@click.option("--explain", is_flag=True, help="Print the generated SQL instead of running it.")
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "clickhouse"]),
    help="With --explain: the SQL dialect to show (default: the store's).",
)
@handle_errors
def query(
    text: str,
    db_path: str,
    since: str | None,
    time_from: str | None,
    time_to: str | None,
    cluster: str | None,
    environment: str | None,
    config_path: str | None,
    output_format: str,
    limit: int | None,
    explain: bool,
    dialect: str | None,
) -> None:
    """Search and count audit events with the query language.

    \b
    Examples:
      kubetrail query 'verb=delete resource=secrets | stats count() by user'
      kubetrail query 'code=403 | top user' --since 24h --format json
      kubetrail query 'exec' --explain

    Exit status: 0 on success, 2 when the query or an option is invalid, 1 when the store fails.
    """
    try:
        window = parse_duration(since) if since else None
        start = parse_instant(time_from) if time_from else None
        end = parse_instant(time_to) if time_to else None
        if window is not None and start is not None:
            raise UsageError("give either --since or --from, not both")
        scope: str | list[str] | None = cluster
        if environment is not None:
            scope = _environment_clusters(environment, cluster, config_path)
        if explain:
            _explain(text, dialect or "duckdb", start, end, scope, limit)
            return
        if not is_url(db_path) and not Path(db_path).exists():
            raise UsageError(f"no store at '{db_path}' (ingest events first, or give --db)")
        store = open_location(db_path, read_only=True)
        try:
            result = run_query(
                store,
                text,
                since=window,
                time_from=start,
                time_to=end,
                cluster=scope,
                limit=limit,
            )
        finally:
            store.close()
    except (QueryError, UsageError) as exc:
        fail(str(exc), code=2)
        return
    _PRINTERS[output_format](result)


def _environment_clusters(
    environment: str, cluster: str | None, config_path: str | None
) -> list[str]:
    """The clusters of an environment in the configuration (issue 9)."""
    from ..config import load_config

    if config_path is None:
        raise UsageError("--environment needs --config (the file that labels the clusters)")
    names = [
        c.name for c in load_config(config_path).server.clusters if c.environment == environment
    ]
    if cluster is not None:
        names = [n for n in names if n == cluster]
    if not names:
        raise UsageError(f"no cluster of environment '{environment}' in {config_path}")
    return names


def _explain(
    text: str,
    dialect: str,
    start: datetime | None,
    end: datetime | None,
    cluster: str | list[str] | None,
    limit: int | None,
) -> None:
    compiled = compile_query(
        text, dialect, time_from=start, time_to=end, cluster=cluster, limit=limit
    )
    click.echo(compiled.pretty())


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (times as RFC 3339 UTC)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _print_table(result: QueryResult) -> None:
    table = Table(show_edge=False, header_style="bold")
    for column in result.columns:
        table.add_column(column, overflow="fold")
    rows = result.rows()
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console = Console()
    console.print(table)
    console.print(f"{len(rows)} rows in {result.elapsed_ms:.0f} ms", style="dim")


def _print_json(result: QueryResult) -> None:
    payload = {
        "columns": list(result.columns),
        "rows": [[_plain(v) for v in row] for row in result.rows()],
        "elapsed_ms": round(result.elapsed_ms, 3),
    }
    click.echo(json.dumps(payload, ensure_ascii=False))


def _print_ndjson(result: QueryResult) -> None:
    for row in result.rows():
        record = {c: _plain(v) for c, v in zip(result.columns, row, strict=True)}
        click.echo(json.dumps(record, ensure_ascii=False))


def _print_csv(result: QueryResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows():
        writer.writerow(_cell(v) if not isinstance(v, str) else v for v in row)


_PRINTERS = {
    "table": _print_table,
    "json": _print_json,
    "ndjson": _print_ndjson,
    "csv": _print_csv,
}
