"""Choosing an engine by configuration: ``store: {engine: clickhouse, url: ..., ...}``.

:class:`StoreConfig` is the ``store`` section of the configuration (unknown keys are refused with
a suggestion); :func:`parse_store_url` reads the short forms the CLI accepts (``duckdb:PATH``,
``clickhouse://user:pass@host:8123/db?cluster=C``, ``clickhouse:http://host:8123``);
:func:`open_configured_store` builds the engine. The ClickHouse engine is imported only when
configured, so the embedded engine works without clickhouse-connect installed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigError
from .base import Store

ENGINES = ("duckdb", "clickhouse")


@dataclass(frozen=True)
class StoreConfig:
    """The ``store`` section of the configuration.

    Attributes:
        engine: ``duckdb`` (embedded, default) or ``clickhouse``.
        path: the DuckDB file (engine ``duckdb``).
        url: the ClickHouse HTTP(S) endpoint, e.g. ``http://clickhouse:8123``.
        database: the ClickHouse database; default ``kubetrail``.
        cluster: the ClickHouse ``remote_servers`` cluster for a multi-node deployment.
        username: the ClickHouse user; default ``default``.
        password: its password.
        retention: days to keep per kubetrail cluster (``{"prod": 400, "*": 30}``).
        read_only: open the store for queries only.
        exact_reads: ClickHouse reads with FINAL (off by default: writes are deduplicated
            exactly by their insert tokens; see ``kubetrail.store.clickhouse``).
    """

    engine: str = "duckdb"
    path: str | None = None
    url: str | None = None
    database: str = "kubetrail"
    cluster: str | None = None
    username: str = "default"
    password: str = ""
    retention: Mapping[str, int] = field(default_factory=dict)
    read_only: bool = False
    exact_reads: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"store.engine: '{self.engine}' is not one of {', '.join(ENGINES)}")
        if self.engine == "duckdb" and not self.path:
            raise ConfigError("store.path is required for engine duckdb")
        if self.engine == "clickhouse" and not self.url:
            raise ConfigError("store.url is required for engine clickhouse")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StoreConfig:
        """Read the ``store`` section, refusing unknown keys (with a "did you mean").

        Raises:
            ConfigError: an unknown key or an invalid value.
        """
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"store: unknown key '{key}'{hint}")
        return cls(**dict(data))

    def build(self) -> Store:
        """Open the configured store (see :func:`open_configured_store`)."""
        return open_configured_store(self)


def parse_store_url(text: str, **overrides: Any) -> StoreConfig:
    """Read ``duckdb:PATH`` or a ClickHouse URL into a :class:`StoreConfig`.

    ClickHouse forms: ``clickhouse://[user[:password]@]host[:port][/database][?cluster=C]``
    (HTTP; ``clickhouses://`` for HTTPS) and ``clickhouse:http(s)://host:port[/database]``.

    Raises:
        ConfigError: the text names no known engine.
    """
    engine, sep, rest = text.partition(":")
    if not sep or engine not in (*ENGINES, "clickhouses") or not rest:
        raise ConfigError(
            f"bad store '{text}': expected duckdb:PATH or clickhouse://host:8123/database"
        )
    if engine == "duckdb":
        return StoreConfig(engine="duckdb", path=rest, **overrides)
    scheme = "https" if engine == "clickhouses" else "http"
    if rest.startswith("//"):
        rest = f"{scheme}:{rest}"
    parts = urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bad ClickHouse URL '{text}'")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    values: dict[str, Any] = {"engine": "clickhouse"}
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    values["url"] = f"{parts.scheme}://{host}:{parts.port or 8123}"
    if parts.path.strip("/"):
        values["database"] = unquote(parts.path.strip("/"))
    if parts.username:
        values["username"] = unquote(parts.username)
    if parts.password:
        values["password"] = unquote(parts.password)
    for key in ("cluster", "database"):
        if key in query:
            values[key] = query[key]
    values.update(overrides)
    return StoreConfig(**values)


def open_configured_store(config: StoreConfig) -> Store:
    """Open the store a configuration describes.

    Raises:
        StoreError: the engine cannot be opened or reached.
    """
    if config.engine == "duckdb":
        from .duckdb import DuckDBStore

        assert config.path is not None
        return DuckDBStore(config.path, read_only=config.read_only)
    from .clickhouse import ClickHouseStore

    assert config.url is not None
    return ClickHouseStore(
        config.url,
        database=config.database,
        cluster=config.cluster,
        username=config.username,
        password=config.password,
        retention=config.retention,
        create=not config.read_only,
        exact_reads=config.exact_reads,
    )
