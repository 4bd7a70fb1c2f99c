"""``kubetrail collect``: follow the API server's audit log file and ship it."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from ..config import CollectConfig, load_config
from ..errors import ConfigError, SourceError
from .options import handle_errors

DEFAULT_CHECKPOINT = "kubetrail-collect.checkpoint.json"


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option(
    "--file", "file_path", help="Audit log [default: /var/log/kubernetes/audit/audit.log]."
)
@click.option("--checkpoint", help=f"Position file [default: {DEFAULT_CHECKPOINT}].")
@click.option("--server", help="kubetrail server URL to send to.")
@click.option(
    "--token", envvar="KUBETRAIL_COLLECT_TOKEN", help="Bearer token (env KUBETRAIL_COLLECT_TOKEN)."
)
@click.option("--cert", help="Client certificate PEM (instead of a token).")
@click.option("--key", help="Client certificate key PEM.")
@click.option("--ca", help="CA bundle that signs the server certificate.")
@click.option("--db", "db_path", help="Write into this local store instead of a server.")
@click.option("--cluster", help="Cluster name with --db [default: default].")
@click.option("--poll", "poll_seconds", type=float, help="Seconds between polls [default: 0.5].")
@click.option("--once", is_flag=True, help="Ship what is there now, then exit.")
@handle_errors
def collect(
    config_path: str | None,
    file_path: str | None,
    checkpoint: str | None,
    server: str | None,
    token: str | None,
    cert: str | None,
    key: str | None,
    ca: str | None,
    db_path: str | None,
    cluster: str | None,
    poll_seconds: float | None,
    once: bool,
) -> None:
    """Follow the audit log across rotation (rename, gzip, copy-truncate) and ship it.

    The position is kept in a checkpoint file saved after each acknowledged batch, so a
    restart (even after kill -9) resumes without loss; the store skips the batch that may be
    sent twice. SIGTERM stops after the batch in flight.
    """
    cfg = load_config(config_path).collect
    for name, value in (
        ("file", file_path),
        ("checkpoint", checkpoint),
        ("server", server),
        ("token", token),
        ("cert", cert),
        ("key", key),
        ("ca", ca),
        ("db", db_path),
        ("cluster", cluster),
        ("poll_seconds", poll_seconds),
    ):
        if value is not None:
            setattr(cfg, name, value)
    if bool(cfg.server) == bool(cfg.db):
        raise ConfigError("give exactly one of --server URL or --db PATH")
    if cfg.server and not (cfg.token or cfg.cert):
        raise ConfigError("--server needs --token or --cert/--key")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")

    from ..sources.checkpoint import Checkpoint
    from ..sources.tail import LogFollower

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    follower = LogFollower(
        cfg.file, Checkpoint(cfg.checkpoint or DEFAULT_CHECKPOINT), batch_lines=cfg.batch_lines
    )
    send, close = _sender(cfg, stopping)
    shipped = 0
    try:
        shipped = _ship(follower, send, stopping, once, cfg.poll_seconds)
    except SourceError:
        if not stopping.is_set():
            raise
        # SIGTERM while retrying an unacknowledged batch: its position is kept; exit 0.
    finally:
        follower.close()
        close()
    click.echo(f"shipped {shipped:,} lines", err=True)
    sys.exit(0)


def _ship(
    follower: Any, send: Callable[[Any], None], stopping: threading.Event, once: bool, poll: float
) -> int:
    from ..sources.tail import follow

    if not once:
        return follow(follower, send, stopping.is_set, poll_seconds=poll, sleep=stopping.wait)
    shipped = 0
    while not stopping.is_set() and (batch := follower.next_batch()) is not None:
        send(batch)
        follower.commit(batch)
        shipped += len(batch.records)
    return shipped


def _sender(cfg: CollectConfig, stopping: threading.Event) -> tuple[Callable[[Any], None], Any]:
    """The function that ships one batch (returning once it is committed), and its closer."""
    if cfg.server:
        from ..web.client import IngestClient

        client = IngestClient(
            cfg.server,
            token=cfg.token,
            cert=cfg.cert,
            key=cfg.key,
            ca=cfg.ca,
            max_backoff=cfg.max_backoff_seconds,
            stop=stopping.is_set,
            sleep=stopping.wait,  # a SIGTERM cuts a backoff short
        )
        return (lambda batch: client.send([line for _, line in batch.records])), client.close

    from ..pipeline import ingest_batches
    from ..quarantine import Quarantine, quarantine_path
    from ..store.location import open_location, sidecar_base

    assert cfg.db is not None
    store = open_location(cfg.db)
    quarantine = Quarantine(quarantine_path(sidecar_base(cfg.db)))

    def send(batch: Any) -> None:
        ingest_batches(store, [(cfg.file, batch.records)], cfg.cluster, quarantine=quarantine)

    def close() -> None:
        quarantine.close()
        store.close()

    return send, close
