"""Options shared by several commands, and the mapping of errors to exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import KubetrailError, SourceError, StoreError

F = TypeVar("F", bound=Callable[..., Any])

#: Default store file; ``KUBETRAIL_DB`` overrides it.
DEFAULT_DB = "kubetrail.duckdb"

db_option = click.option(
    "--db",
    "db_path",
    default=DEFAULT_DB,
    show_default=True,
    envvar="KUBETRAIL_DB",
    type=click.Path(dir_okay=False),
    help="The store: a DuckDB file or a clickhouse://host:8123/db URL (env KUBETRAIL_DB).",
)

format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Human-readable text, or one JSON object.",
)


def fail(message: str, code: int = 1) -> None:
    """Print an error on stderr and exit with ``code``."""
    click.echo(f"kubetrail: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn kubetrail's errors into a one-line message and exit code 1 (never a traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SourceError, StoreError, KubetrailError) as exc:
            fail(str(exc))
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (e.g. `| head`); not an error
            sys.exit(0)

    return wrapper  # type: ignore[return-value]


def print_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(value, default=str, ensure_ascii=False))
