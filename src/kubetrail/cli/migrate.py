"""``kubetrail migrate``: move a store to another engine, checking every event."""

from __future__ import annotations

import sys

import click

from ..migrate import COPY_ROWS
from ..migrate import migrate as run_migration
from ..store.factory import parse_store_url
from .options import format_option, handle_errors, print_json


@click.command()
@click.option("--from", "source", required=True, metavar="duckdb:PATH", help="The store to read.")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="clickhouse:URL",
    help="The store to fill, e.g. clickhouse://user:pass@host:8123/kubetrail?cluster=C.",
)
@click.option("--verify-only", is_flag=True, help="Only compare counts and event hashes.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=COPY_ROWS, show_default=True)
@format_option
@handle_errors
def migrate(
    source: str, target: str, verify_only: bool, batch_rows: int, output_format: str
) -> None:
    """Copy every event of one store into another, then check counts and every event's hash.

    Re-running is safe: events already in the target are skipped. Exit codes: 0 the target has
    every event unchanged, 1 a check failed or a store failed, 2 usage error.
    """
    try:
        source_config = parse_store_url(source, read_only=True)
        target_config = parse_store_url(target)
    except Exception as exc:  # ConfigError: a usage error here
        raise click.UsageError(str(exc)) from exc
    src = source_config.build()
    try:
        dst = target_config.build()
        try:
            report = run_migration(src, dst, copy=not verify_only, batch_rows=batch_rows)
        finally:
            dst.close()
    finally:
        src.close()
    if output_format == "json":
        print_json(report.as_dict())
    else:
        status = "ok" if report.ok else "MISMATCH"
        click.echo(
            f"{status}: copied {report.copied:,} events ({report.stored:,} new, "
            f"{report.duplicates:,} already there); source {report.source_count:,}, "
            f"target {report.target_count:,}"
        )
        for cluster, day in report.mismatched_days:
            click.echo(f"  differs: cluster {cluster}, day {day}")
        for key in report.missing[:20]:
            click.echo(f"  missing in target: {key}")
        for key in report.extra[:20]:
            click.echo(f"  only in target: {key}")
    sys.exit(0 if report.ok else 1)
