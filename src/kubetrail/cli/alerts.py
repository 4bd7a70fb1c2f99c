"""``kubetrail alerts``: the stored alerts, with their delivery state at each sink."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import UsageError
from ..query.runner import parse_duration
from ..store.base import Store
from .options import db_option, fail, handle_errors


@click.command()
@db_option
@click.option("--since", help="Only alerts last seen in this window, e.g. 24h, 7d.")
@click.option(
    "--status",
    type=click.Choice(["open", "acknowledged", "resolved"]),
    help="Only alerts with this status.",
)
@click.option("--cluster", help="Only alerts of this cluster.")
@click.option(
    "--environment",
    "--env",
    "environment",
    help="Only alerts recorded with this environment (the cluster's label in the config).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="The server's YAML config: read server.db and every cluster's own store file "
    "(server.clusters[].store) instead of --db.",
)
@click.option("--limit", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A table, or one JSON object per alert per line.",
)
@handle_errors
def alerts(
    db_path: str,
    since: str | None,
    status: str | None,
    cluster: str | None,
    environment: str | None,
    config_path: str | None,
    limit: int,
    output_format: str,
) -> None:
    """List stored alerts, newest first, with failed or pending deliveries.

    With --config, the alerts of clusters that write to store files of their own are read from
    those files (where the server keeps them), merged with those of server.db.

    Exit status: 0, 1 when the store fails, 2 on usage errors.
    """
    from ..detect.routed_alerts import list_alerts

    start = None
    if since:
        try:
            start = datetime.now(UTC).replace(tzinfo=None) - parse_duration(since)
        except UsageError as exc:
            fail(str(exc), 2)
    store = _open(db_path, config_path)
    try:
        found = list_alerts(
            store,
            since=start,
            status=status,
            cluster=cluster,
            environment=environment,
            limit=limit,
        )
    finally:
        store.close()
    if output_format == "json":
        for a in found:
            click.echo(json.dumps(a.to_json(), ensure_ascii=False))
        return
    if not found:
        click.echo("no alerts")
        return
    table = Table(box=None)
    for column in (
        "id",
        "status",
        "severity",
        "rule",
        "cluster",
        "environment",
        "count",
        "last seen",
        "deliveries",
        "message",
    ):
        table.add_column(column, overflow="fold")
    for a in found:
        deliveries = ", ".join(
            f"{d.sink}:{d.state}" + (f"({d.attempts}: {d.last_error})" if d.last_error else "")
            for d in a.deliveries
        )
        table.add_row(
            a.id[:12],
            a.status,
            a.severity,
            a.rule,
            a.cluster,
            a.environment or "-",
            str(a.count),
            a.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            deliveries or "-",
            a.message,
        )
    Console(width=220).print(table)
    failed = sum(1 for a in found for d in a.deliveries if d.state in ("failed", "retrying"))
    click.echo(f"{len(found)} alert(s); {failed} deliveries failed or retrying")


def _open(db_path: str, config_path: str | None) -> Store:
    """The store of ``--db``, or every store file of the ``--config`` server (each once)."""
    from ..config import load_config
    from ..store import open_store
    from ..store.layout import RoutedStore
    from ..store.location import is_url, open_location

    if config_path is None:
        if not is_url(db_path) and not Path(db_path).exists():
            fail(f"{db_path}: no such store", 2)
        return open_location(db_path)
    server = load_config(config_path).server
    if not any(c.store for c in server.clusters):
        return open_location(server.db)
    for path in [server.db, *(c.store for c in server.clusters if c.store)]:
        if not Path(path).exists():
            fail(f"{path}: no such store (from {config_path})", 2)
    return RoutedStore.open(server, open_store)
