"""Where a store is: a file path for the embedded engine, or a URL for ClickHouse.

Every ``--db`` option and the ``db`` keys of the configuration take a *location*: a path
(``audit.duckdb``), ``duckdb:PATH``, or a ClickHouse URL
(``clickhouse://user:password@host:8123/database?cluster=NAME``; ``clickhouses://`` for HTTPS).
The password may come from ``KUBETRAIL_CH_PASSWORD`` instead of the URL. Local side files
(the quarantine, the server's auth file) sit next to a DuckDB file; with ClickHouse they are
named after the database in the working directory (see :func:`sidecar_base`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import Store
from .factory import StoreConfig, open_configured_store, parse_store_url

_URL_PREFIXES = ("duckdb:", "clickhouse:", "clickhouses:")
PASSWORD_ENV = "KUBETRAIL_CH_PASSWORD"


def is_url(location: str | Path) -> bool:
    """True for ``duckdb:``/``clickhouse:`` locations, False for a plain file path."""
    return isinstance(location, str) and location.startswith(_URL_PREFIXES)


def store_config(location: str | Path, *, read_only: bool = False) -> StoreConfig:
    """The :class:`StoreConfig` a location names.

    Raises:
        ConfigError: a ``clickhouse:`` location that is not a valid URL.
    """
    if not is_url(location):
        return StoreConfig(engine="duckdb", path=str(location), read_only=read_only)
    config = parse_store_url(str(location), read_only=read_only)
    if config.engine == "clickhouse" and not config.password and os.environ.get(PASSWORD_ENV):
        config = parse_store_url(
            str(location), read_only=read_only, password=os.environ[PASSWORD_ENV]
        )
    return config


def open_location(
    location: str | Path,
    *,
    read_only: bool = False,
    duckdb_settings: Mapping[str, Any] | None = None,
) -> Store:
    """Open the store at a location (see the module docstring).

    Args:
        location: a DuckDB path or a store URL.
        read_only: open for queries only.
        duckdb_settings: engine settings for the embedded store (``memory_limit``,
            ``checkpoint_threshold``, ``threads``); ignored by ClickHouse, which has its own.

    Raises:
        ConfigError: a malformed URL.
        StoreError: the store cannot be opened or reached.
    """
    config = store_config(location, read_only=read_only)
    if config.engine == "duckdb":
        from . import open_store

        assert config.path is not None
        return open_store(config.path, read_only=read_only, **dict(duckdb_settings or {}))
    return open_configured_store(config)


def sidecar_base(location: str | Path | StoreConfig) -> str:
    """The base name of a store's local side files (``<base>.quarantine.jsonl``, ...).

    A DuckDB file is its own base; a ClickHouse store has no local file, so its side files are
    ``clickhouse-<database>.*`` in the working directory.
    """
    config = location if isinstance(location, StoreConfig) else store_config(location)
    if config.engine == "duckdb":
        assert config.path is not None
        return config.path
    return f"clickhouse-{config.database}"
