"""``kubetrail store``: set up a store's schema (``store init``), or print it for a DBA."""

from __future__ import annotations

import json

import click

from ..detect.alertstore import clickhouse_ddl
from ..store.clickhouse_schema import schema_ddl
from ..store.factory import StoreConfig, open_configured_store
from .options import handle_errors


def _retention(values: tuple[str, ...]) -> dict[str, int]:
    retention: dict[str, int] = {}
    for value in values:
        name, sep, days = value.partition("=")
        if not sep or not days.isdigit() or not name:
            raise click.BadParameter(f"'{value}': expected CLUSTER=DAYS (or *=DAYS)")
        retention[name] = int(days)
    return retention


@click.group()
def store() -> None:
    """Set up and inspect the store's engine."""


@store.command("init")
@click.option(
    "--engine",
    type=click.Choice(["clickhouse", "duckdb"]),
    default="clickhouse",
    show_default=True,
    help="The engine to set up.",
)
@click.option("--url", default="http://127.0.0.1:8123", show_default=True, help="ClickHouse URL.")
@click.option("--database", default="kubetrail", show_default=True, help="ClickHouse database.")
@click.option(
    "--cluster",
    default=None,
    help="ClickHouse cluster (remote_servers): ON CLUSTER DDL, replicated + Distributed tables.",
)
@click.option("--username", default="default", show_default=True, envvar="KUBETRAIL_CH_USER")
@click.option(
    "--password", default="", envvar="KUBETRAIL_CH_PASSWORD", help="(env KUBETRAIL_CH_PASSWORD)"
)
@click.option(
    "--retention",
    multiple=True,
    metavar="CLUSTER=DAYS",
    help="Days to keep a cluster's events (repeatable; '*=DAYS' for the others).",
)
@click.option("--db", "db_path", default="kubetrail.duckdb", show_default=True, help="DuckDB file.")
@click.option("--print", "print_only", is_flag=True, help="Print the DDL instead of running it.")
@handle_errors
def init(
    engine: str,
    url: str,
    database: str,
    cluster: str | None,
    username: str,
    password: str,
    retention: tuple[str, ...],
    db_path: str,
    print_only: bool,
) -> None:
    """Create the store's tables (idempotent), or print the ClickHouse DDL with --print.

    Exit codes: 0 done, 1 the engine failed, 2 usage error.
    """
    days = _retention(retention)
    if engine == "duckdb":
        if print_only or cluster:
            raise click.UsageError("--print and --cluster apply to --engine clickhouse only")
        open_configured_store(StoreConfig(engine="duckdb", path=db_path)).close()
        click.echo(f"initialised {db_path}")
        return
    alert_tables = clickhouse_ddl(database, cluster)
    if print_only:
        for statement in [*schema_ddl(database, cluster=cluster, retention=days), *alert_tables]:
            click.echo(statement + ";\n")
        return
    config = StoreConfig(
        engine="clickhouse",
        url=url,
        database=database,
        cluster=cluster,
        username=username,
        password=password,
        retention=days,
    )
    opened = open_configured_store(config)
    try:
        if days:  # also for a store that exists already
            opened.set_retention(days)  # type: ignore[attr-defined]
        for statement in alert_tables:
            opened.command(statement)  # type: ignore[attr-defined]
    finally:
        opened.close()
    where = f" on cluster {cluster}" if cluster else ""
    click.echo(json.dumps({"initialised": f"{url}/{database}{where}"}))
