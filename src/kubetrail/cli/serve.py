"""``kubetrail serve``: the collector's HTTP server (webhook ingest, health, metrics, web UI)."""

from __future__ import annotations

import logging
import sys

import click

from ..config import ClusterConfig, Config, ServerConfig, load_config, parse_listen, validate
from ..errors import ConfigError
from ..model.arrowpool import use_system_pool
from ..web.auth import hash_token
from .options import handle_errors


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option(
    "--db",
    "db_path",
    envvar="KUBETRAIL_DB",
    help="Store: a DuckDB file or a clickhouse:// URL (env KUBETRAIL_DB).",
)
@click.option("--listen", help="HOST:PORT to listen on [default: 127.0.0.1:8080].")
@click.option(
    "--cluster-token",
    "cluster_tokens",
    multiple=True,
    metavar="NAME=TOKEN",
    help="A cluster and its bearer token (repeatable; hashed in memory).",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Server cert PEM.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Server key PEM.")
@click.option(
    "--client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA that signs client certificates (their CN or SAN names the cluster).",
)
@click.option("--demo/--no-demo", default=None, help="Load demo events into an empty store.")
@click.option("--demo-events", type=click.IntRange(min=1), help="Demo events to generate.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@handle_errors
def serve(
    config_path: str | None,
    db_path: str | None,
    listen: str | None,
    cluster_tokens: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
    demo: bool | None,
    demo_events: int | None,
    log_level: str,
) -> None:
    """Receive audit events from API servers (webhook backend) and `kubetrail collect`.

    POST /ingest/v1/events takes an EventList, an Event or JSON lines (gzip too) from a
    configured cluster's credential; GET /healthz, /readyz and /metrics; the web UI at /ui/
    and its JSON API at /api (log in as admin with the admin token). Flags override the
    config file. SIGTERM stops accepting, commits what was acknowledged and exits 0.
    """
    full = load_config(config_path)
    config = full.server
    _apply_flags(config, db_path, listen, cluster_tokens, tls_cert, tls_key, client_ca)
    validate(Config(server=config), "flags")
    if demo is not None:
        config.demo = demo
    if demo_events is not None:
        config.demo_events = demo_events
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")

    if full.detect.enabled:
        _check_detections(full)
    from ..web import bootstrap  # the heavy imports only once arguments are valid
    from ..web.app import create_app
    from ..web.server import run

    store = None
    shown_store = config.db
    if full.store is not None and not db_path:
        # The store section wins over server.db, which then only names the local side files
        # (quarantine, auth file).
        shown_store = full.store.url or full.store.path or config.db
        store = full.store.build()
    use_system_pool()
    token = bootstrap.ensure_admin_token(config)
    if config.demo:
        summary = bootstrap.load_demo(config, store=store, detect=full.detect)
        if summary is not None:
            click.echo(
                f"loaded {summary.stored:,} demo events (cluster '{bootstrap.DEMO_CLUSTER}')"
            )
    host, port = parse_listen(config.listen)
    scheme = "https" if config.tls.cert else "http"
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"kubetrail serving on {scheme}://{shown}:{port}/  (store: {shown_store})")
    click.echo(f"web UI: {scheme}://{shown}:{port}/ui/  (user 'admin', password: its token)")
    if token is not None:
        click.echo(f"admin token (shown once; its hash is in {bootstrap.auth_file(config.db)}):")
        click.echo(f"  {token}")
    if not config.clusters:
        click.echo("no cluster credentials configured: ingest answers 401 (see --cluster-token)")
    sys.stdout.flush()
    if not run(create_app(config, store=store, detect=full.detect), config, log_level=log_level):
        sys.exit(1)


def _check_detections(full: Config) -> None:
    """Fail fast, before serving, on an invalid rule or sink (the lifespan would fail later)."""
    from ..detect.environments import environment_clusters
    from ..detect.loader import load_ruleset
    from ..detect.sinks import build_sink

    detect = full.detect
    load_ruleset(
        detect.rule_dirs,
        builtin=detect.builtin,
        disabled=detect.disabled,
        variables=detect.variable_values(),
        environments=environment_clusters(full.server),
    )
    for sink in detect.sinks:
        build_sink(sink)


def _apply_flags(
    config: ServerConfig,
    db_path: str | None,
    listen: str | None,
    cluster_tokens: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    client_ca: str | None,
) -> None:
    if db_path:
        config.db = db_path
    if listen:
        parse_listen(listen, "--listen")
        config.listen = listen
    by_name = {c.name: c for c in config.clusters}
    for item in cluster_tokens:
        name, sep, token = item.partition("=")
        if not sep or not name or not token:
            raise click.BadParameter(f"{item!r} is not NAME=TOKEN", param_hint="--cluster-token")
        cluster = by_name.setdefault(name, ClusterConfig(name=name))
        if cluster not in config.clusters:
            config.clusters.append(cluster)
        cluster.token_sha256.append(hash_token(token))
    config.tls.cert = tls_cert or config.tls.cert
    config.tls.key = tls_key or config.tls.key
    config.tls.client_ca = client_ca or config.tls.client_ca
    if bool(config.tls.cert) != bool(config.tls.key):
        raise ConfigError("--tls-cert and --tls-key must be given together")
    if config.tls.client_ca and not config.tls.cert:
        raise ConfigError("--client-ca needs --tls-cert and --tls-key")
