"""``kubetrail ingest``, ``export`` and ``stats``."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..model.arrowpool import use_system_pool
from ..pipeline import IngestSummary, ingest_paths
from ..policy.transform import PolicyConfig
from ..quarantine import Quarantine, quarantine_path
from ..sources.containerlog import FORMATS
from ..store import INGEST_SETTINGS
from ..store.location import open_location, sidecar_base
from .options import db_option, format_option, handle_errors, print_json


@click.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option("--cluster", default="default", show_default=True, help="Cluster of the events.")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Apply this audit Policy before storing, as kube-apiserver would have (collector side).",
)
@click.option(
    "--format-in",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Input format: JSON lines, or a container log (CRI, Docker json-file); auto per file.",
)
@click.option(
    "--detect",
    is_flag=True,
    help="Run the detection rules on each batch and store their alerts (see docs/detections.md).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="With --detect: the config file whose detect section chooses the rules.",
)
@db_option
@format_option
@handle_errors
def ingest(
    paths: tuple[str, ...],
    cluster: str,
    policy_path: str | None,
    format_in: str,
    detect: bool,
    config_path: str | None,
    db_path: str,
    output_format: str,
) -> None:
    """Read audit events from PATHS (files, .gz, or - for stdin) into the store.

    Accepts JSON lines of Events or EventLists (audit.k8s.io/v1 and v1beta1) and whole
    EventList documents, and the API server's container log (--audit-log-path=-) as written by
    containerd/CRI-O or Docker: its other lines are counted as not_audit. Refused records go,
    with their reason, to DB.quarantine.jsonl.
    Exit status: 0 when every record was stored or was a duplicate, 1 when any was refused,
    2 on usage errors.
    """
    use_system_pool()
    transform = PolicyConfig(path=policy_path).build() if policy_path else None
    quarantine = Quarantine(quarantine_path(sidecar_base(db_path)))
    store = open_location(db_path, duckdb_settings=INGEST_SETTINGS)
    detector = _detector(store, config_path) if detect else None
    try:
        with _progress() as advance:
            summary = ingest_paths(
                store,
                list(paths),
                cluster,
                quarantine=quarantine,
                progress=advance,
                transform=transform,
                format_in=format_in,
                detector=detector,
            )
    finally:
        quarantine.close()
        if detector is not None:
            detector.close()
        store.close()
    if not summary.rejected:
        summary.quarantine = None
    if output_format == "json":
        print_json(summary.as_dict())
    else:
        _print_summary(summary)
    sys.exit(1 if summary.rejected else 0)


def _detector(store: object, config_path: str | None) -> Any:
    """The stateless rules of the config's detect section, storing alerts in ``store``."""
    from ..config import load_config
    from ..detect.detector import Detector
    from ..detect.environments import cluster_environments, environment_clusters
    from ..detect.loader import load_ruleset

    full = load_config(config_path)
    detect = full.detect
    ruleset = load_ruleset(
        detect.rule_dirs,
        builtin=detect.builtin,
        disabled=detect.disabled,
        variables=detect.variable_values(),
        environments=environment_clusters(full.server) if config_path else None,
    )
    envs = cluster_environments(full.server)
    return Detector(store, ruleset.rules, environments=envs)  # type: ignore[arg-type]


class _progress:
    """A progress line on a terminal (stderr), nothing otherwise."""

    def __enter__(self) -> object:
        if not sys.stderr.isatty():
            return None
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("ingesting: {task.completed:,} records"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("ingest", total=None)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "_bar"):
            self._bar.stop()


def _print_summary(summary: IngestSummary) -> None:
    rate = summary.read / summary.seconds if summary.seconds > 0 else 0.0
    click.echo(
        f"read {summary.read:,}  stored {summary.stored:,}  duplicates {summary.duplicates:,}  "
        f"rejected {summary.rejected:,}  ({summary.seconds:.1f} s, {rate:,.0f} records/s)"
    )
    if summary.not_audit:
        click.echo(f"skipped (not audit events): {summary.not_audit:,} container log lines")
    if summary.dropped_by_policy:
        click.echo(f"dropped by the audit policy: {summary.dropped_by_policy:,}")
    for reason, count in summary.rejected_by_reason.most_common():
        click.echo(f"  rejected {count:,}: {reason}")
    if summary.rejected:
        click.echo(f"rejected records and their reasons: {summary.quarantine}")


@click.command()
@db_option
@click.option("--cluster", default=None, help="Only this cluster's events.")
@handle_errors
def export(db_path: str, cluster: str | None) -> None:
    """Write the stored events as JSON lines (after redaction), in time order."""
    store = open_location(db_path, read_only=True)
    out = sys.stdout
    try:
        for line in store.export(cluster):
            out.write(line)
            out.write("\n")
        out.flush()
    finally:
        store.close()


@click.command()
@db_option
@format_option
@handle_errors
def stats(db_path: str, output_format: str) -> None:
    """Events by cluster, stage and verb, the time range covered, and gaps in each stream."""
    from ..store.audit_counters import audit_error_gaps  # issue 9: scraped API server counters
    from ..store.gaps import find_gaps  # issue 9: quiet periods longer than usual

    store = open_location(db_path, read_only=True)
    try:
        result = store.stats()
        gaps = find_gaps(store)
        audit_errors = audit_error_gaps(store)
    finally:
        store.close()
    if output_format == "json":
        print_json(
            {
                "total": result.total,
                "first": result.first.isoformat() + "Z" if result.first else None,
                "last": result.last.isoformat() + "Z" if result.last else None,
                "by_cluster": result.by_cluster,
                "by_stage": result.by_stage,
                "by_verb": result.by_verb,
                "gaps": [g.as_dict() for g in gaps],
                "audit_errors": [g.as_dict() for g in audit_errors],
            }
        )
        return
    console = Console()
    first = result.first.isoformat(sep=" ") if result.first else "-"
    last = result.last.isoformat(sep=" ") if result.last else "-"
    console.print(f"{result.total:,} events, from {first} to {last} (UTC)")
    for title, counts in (
        ("cluster", result.by_cluster),
        ("stage", result.by_stage),
        ("verb", result.by_verb),
    ):
        table = Table(title=f"events by {title}", title_justify="left")
        table.add_column(title)
        table.add_column("events", justify="right")
        for key, count in counts.items():
            table.add_row(key, f"{count:,}")
        console.print(table)
    for gap in gaps:
        console.print(
            f"gap: {gap.cluster}: no events from {gap.start} to {gap.end} "
            f"({gap.seconds / 60:.0f} min; usually {gap.usual_seconds / 60:.0f} min apart)"
        )
    for lost in audit_errors:
        console.print(f"gap: {lost.cluster}: {lost.message}", markup=False)
