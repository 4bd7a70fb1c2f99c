"""``kubetrail report``: what happened in the stored requests, at a glance."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..report import build_report
from ..store.location import open_location
from .options import db_option, format_option, handle_errors, print_json


@click.command()
@db_option
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000))
@format_option
@handle_errors
def report(db_path: str, top: int, output_format: str) -> None:
    """Requests by verb, top users and denied requests (401/403) by user."""
    store = open_location(db_path, read_only=True)
    try:
        result = build_report(store, top=top)
    finally:
        store.close()
    if output_format == "json":
        print_json(
            {
                "requests": result.requests,
                "denied": result.denied,
                "by_verb": dict(result.by_verb),
                "top_users": dict(result.top_users),
                "denied_by_user": dict(result.denied_by_user),
            }
        )
        return
    console = Console()
    share = 100.0 * result.denied / result.requests if result.requests else 0.0
    console.print(
        f"[bold]{result.requests:,}[/] requests, [bold]{result.denied:,}[/] denied ({share:.1f} %)"
    )
    for title, rows in (
        ("requests by verb", result.by_verb),
        ("top users", result.top_users),
        ("denied requests by user", result.denied_by_user),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column(title.split(" by ")[-1] if " by " in title else "user")
        table.add_column("requests", justify="right")
        for key, count in rows:
            table.add_row(key, f"{count:,}")
        console.print(table)
