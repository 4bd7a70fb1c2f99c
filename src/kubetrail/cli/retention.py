"""``kubetrail retention apply``: remove what is older than each cluster's retention."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..config import load_config
from ..errors import ConfigError
from ..store import open_store
from ..store.layout import store_layouts
from ..store.location import is_url, open_location
from ..store.retention import RetentionPolicy, apply_retention, parse_duration, parse_size
from .options import DEFAULT_DB, format_option, handle_errors, print_json


@click.group()
def retention() -> None:
    """Retention per cluster: what is kept, for how long, and removing the rest."""


@retention.command("apply")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option(
    "--db",
    "db_path",
    envvar="KUBETRAIL_DB",
    help="Main store: a file or a clickhouse://host:8123/db URL (env KUBETRAIL_DB).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be removed; change nothing.")
@click.option("--default", "default", metavar="DURATION", help="Retention of other clusters.")
@click.option(
    "--retention",
    "per_cluster",
    multiple=True,
    metavar="CLUSTER=DURATION",
    help="Retention of a cluster (repeatable), e.g. prod=400d.",
)
@click.option("--max-size", metavar="SIZE", help="Size cap of the main store, e.g. 50GB.")
@click.option("--now", "now_text", hidden=True, help="The current time (ISO 8601 UTC), for tests.")
@format_option
@handle_errors
def apply(
    config_path: str | None,
    db_path: str | None,
    dry_run: bool,
    default: str | None,
    per_cluster: tuple[str, ...],
    max_size: str | None,
    now_text: str | None,
    output_format: str,
) -> None:
    """Remove every cluster's events older than its retention, and evict above size caps.

    Retention comes from the config (server.retention, server.clusters[].retention) and the
    flags, which win. Each removal is recorded in the cluster's hash chain. Exit codes: 0 done,
    1 a store failed, 2 usage error.
    """
    overrides = {}
    try:
        if default:
            parse_duration(default, "--default")
        if max_size:
            parse_size(max_size, "--max-size")
        for item in per_cluster:
            name, sep, text = item.partition("=")
            if not sep or not name:
                raise ConfigError(f"--retention: {item!r} is not CLUSTER=DURATION")
            overrides[name] = parse_duration(text, "--retention")
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        now = datetime.fromisoformat(now_text.removesuffix("Z")) if now_text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from exc
    config = load_config(config_path).server
    if db_path:
        config.db = db_path
    elif config_path is None:
        config.db = DEFAULT_DB
    config.retention.default = default or config.retention.default
    config.retention.max_size = max_size or config.retention.max_size
    reports = []
    for layout in store_layouts(config):
        if not is_url(layout.path) and not Path(layout.path).exists():
            continue  # a cluster that never wrote: nothing to remove, and no file to create
        policy = RetentionPolicy(
            layout.policy.default, {**layout.policy.clusters, **overrides}, layout.policy.max_size
        )
        store: Any = open_location(layout.path) if is_url(layout.path) else open_store(layout.path)
        try:
            reports.append(apply_retention(store, policy, now=now, dry_run=dry_run))
        finally:
            store.close()
    if output_format == "json":
        print_json({"dry_run": dry_run, "stores": [r.as_dict() for r in reports]})
        return
    verb = "would remove" if dry_run else "removed"
    for report in reports:
        if not report.removals:
            click.echo(f"{report.store}: nothing to remove")
        for r in report.removals:
            span = f"{_t(r.first_time)} .. {_t(r.last_time)}"
            size = f"{'~' if r.estimated else ''}{r.bytes_reclaimed:,} bytes"
            why = f"older than {r.retention}" if r.retention else "over the size cap"
            click.echo(
                f"{report.store}: {r.cluster}: {verb} {r.events:,} events ({span}), "
                f"{len(r.batches)} batches, {why}, {size}"
            )
            if r.kind == "eviction" and not dry_run:
                click.echo(f"warning: {r.cluster}: evicted by the store's size cap", err=True)


def _t(value: datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value else "-"
