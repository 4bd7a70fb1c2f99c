"""``kubetrail demo``: synthetic audit logs of a demo cluster (see docs/demo-data.md)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from kubetrail.demo import DEFAULT_END, write_events

_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class EndTime(click.ParamType):
    """An RFC 3339 timestamp (``2026-01-01T00:00:00Z``) or the word ``now``."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.lower() == "now":
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is not an RFC 3339 time like 2026-01-01T00:00:00Z, nor 'now'", param, ctx
            )
        if moment.tzinfo is None:
            self.fail(f"{text!r} has no time zone; add Z for UTC", param, ctx)
        return moment.astimezone(UTC)


class Duration(click.ParamType):
    """A duration such as ``24h``, ``7d``, ``90m`` or ``1h30m`` (units ms, s, m, h, d, w)."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        parts = _SPAN_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{text!r} is not a duration like 24h, 7d or 1h30m", param, ctx)
        span = timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
        if span <= timedelta(0):
            self.fail("the span must be longer than zero", param, ctx)
        return span


@click.group()
def demo() -> None:
    """Synthetic data of a realistic demo cluster."""


@demo.command()
@click.option(
    "--events",
    "-n",
    "events",
    type=click.IntRange(min=1),
    required=True,
    help="Number of audit events to write.",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Random seed; the same arguments always give the same bytes.",
)
@click.option(
    "--end",
    type=EndTime(),
    default=DEFAULT_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
    show_default=True,
    help="Time of the last event (RFC 3339, or 'now').",
)
@click.option(
    "--span",
    type=Duration(),
    default="24h",
    show_default=True,
    help="Time the log covers, ending at --end (e.g. 24h, 7d).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="File to write (- for stdout).",
)
def generate(events: int, seed: int, end: datetime, span: timedelta, output: str) -> None:
    """Write EVENTS audit.k8s.io/v1 events of the demo cluster as JSON Lines.

    The events are sorted by time, as in an API server's audit log file.
    """
    if output == "-":
        write_events(sys.stdout.buffer, events, seed, end, span)
        sys.stdout.buffer.flush()
        return
    with open(output, "wb") as stream:
        write_events(stream, events, seed, end, span)
