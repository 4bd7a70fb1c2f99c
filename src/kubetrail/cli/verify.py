"""``kubetrail verify``: check the hash chain and the stored events; export signed digests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..config import ServerConfig, load_config
from ..errors import StoreError
from ..store import open_store
from ..store.digest import (
    PUBLIC_KEY_FILE,
    check_digests,
    export_digests,
    key_path_for,
    load_or_create_key,
)
from ..store.layout import store_layouts
from ..store.location import is_url, open_location, sidecar_base
from ..store.retention import RetentionPolicy
from ..store.verify import VerifyReport, verify_store
from .options import DEFAULT_DB, db_option, format_option, handle_errors, print_json


@click.command()
@db_option
@click.option("--cluster", default=None, help="Only this cluster [default: every cluster].")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Check retention and eviction records against the configured retention and size cap.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    help="After a passed verification, write signed digest files of each chain's head here.",
)
@click.option(
    "--digests",
    "digests_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Also check the signed digest files kept here against the chain.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False),
    help="Ed25519 signing key (PEM) [default: <db>.signing-key.pem, created if missing; "
    "for ClickHouse clickhouse-<database>.signing-key.pem].",
)
@click.option(
    "--public-key",
    "public_key_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Public key that checks --digests [default: that of --key, else the one in the folder].",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also re-derive every extracted column from the stored JSON and compare (slower).",
)
@format_option
@handle_errors
def verify(
    db_path: str,
    cluster: str | None,
    config_path: str | None,
    export_dir: str | None,
    digests_dir: str | None,
    key_path: str | None,
    public_key_path: str | None,
    deep: bool,
    output_format: str,
) -> None:
    """Recompute each cluster's hash chain and every batch's event digest.

    Reports any event changed, removed or inserted outside the chain, any chain record removed
    or altered, and any retention record that does not hold, with the batch and time range.
    Exit codes: 0 verified, 1 any failure, 2 usage error.
    """
    policy: RetentionPolicy | None = None
    if config_path is not None:
        server = load_config(config_path).server
        if db_path == DEFAULT_DB:
            db_path = server.db
        else:
            server.db = db_path
        policy = _policy_of(server, db_path)
    if is_url(db_path):
        store: Any = open_location(db_path, read_only=True)
    elif not Path(db_path).exists():
        raise StoreError(f"{db_path}: no such store")
    else:
        store = open_store(db_path, read_only=True)
    try:
        report = verify_store(store, cluster, policy=policy, deep=deep)
        if digests_dir is not None:
            public = _public_key(db_path, key_path, public_key_path, Path(digests_dir))
            report.problems.extend(check_digests(store, Path(digests_dir), public))
    finally:
        store.close()
    written = []
    if export_dir is not None and report.ok:
        key = load_or_create_key(Path(key_path) if key_path else _default_key(db_path))
        written = export_digests(report, Path(export_dir), key)
    if output_format == "json":
        body = report.as_dict()
        if export_dir is not None:
            body["exported"] = [str(d.path) for d in written]
        print_json(body)
    else:
        _print_text(report, [str(d.path) for d in written])
    if not report.ok:
        sys.exit(1)


def _policy_of(server: ServerConfig, db_path: str) -> RetentionPolicy:
    for layout in store_layouts(server):
        if is_url(db_path) and layout.path == db_path:
            return layout.policy
        if not is_url(db_path) and Path(layout.path).resolve() == Path(db_path).resolve():
            return layout.policy
    return RetentionPolicy()


def _default_key(db_path: str) -> Path:
    """``<db>.signing-key.pem``; for ClickHouse ``clickhouse-<database>.signing-key.pem``."""
    return key_path_for(sidecar_base(db_path) if is_url(db_path) else db_path)


def _public_key(
    db_path: str, key_path: str | None, public_key_path: str | None, folder: Path
) -> Ed25519PublicKey:
    if public_key_path:
        data = Path(public_key_path).read_bytes()
    else:
        private = Path(key_path) if key_path else _default_key(db_path)
        if private.exists():
            return load_or_create_key(private).public_key()
        data = (folder / PUBLIC_KEY_FILE).read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise StoreError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise StoreError("the digest public key must be Ed25519")
    return key


def _print_text(report: VerifyReport, written: list[str]) -> None:
    for name, result in report.clusters.items():
        click.echo(
            f"{name}: {result.records:,} chain records, {result.batches:,} batches, "
            f"{result.events:,} events; {result.removed_events:,} events removed by retention "
            f"or eviction; head {result.head_seq} {result.head[:16]}"
        )
    for p in report.problems:
        where = f"seq {p.seq}" if p.seq is not None else "no record"
        batch = f" batch {p.batch_id}" if p.batch_id else ""
        span = ""
        if p.first_time or p.last_time:
            span = f" ({_t(p.first_time)} .. {_t(p.last_time)})"
        click.echo(f"FAIL {p.cluster} {where}{batch}{span}: {p.kind}: {p.detail}")
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"verification {'passed' if report.ok else 'FAILED'} in {report.seconds:.2f}s")


def _t(value: object) -> str:
    return str(value) if value is not None else "-"
