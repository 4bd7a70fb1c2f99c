"""Which store file each cluster writes to, and the retention of each file.

A cluster with ``store: FILE`` in the configuration writes there; every other cluster writes
to ``server.db``. The configuration refuses layouts where clusters of two environments would
share a file (``kubetrail.config``), so production and development data never mix.
:class:`RoutedStore` is the one store the server's writer sees: it sends each batch to its
cluster's file. Its own reads (``query``, stats, export) go to ``server.db``; alerts are kept
in each cluster's file too (:mod:`kubetrail.detect.routed_alerts`). The web UI and ``/api``
pick the file of the selected cluster or environment with :meth:`RoutedStore.target`
(:func:`kubetrail.web.scope.read_scope`), and the scheduled detections run on each of
:meth:`RoutedStore.stores`. From the command line a cluster stored apart is read with ``--db``
its own file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..config import ServerConfig
from .base import BatchMeta, StoreStats, WriteResult
from .duckdb import DuckDBStore
from .retention import RetentionPolicy, parse_duration, parse_size


@dataclass
class StoreLayout:
    """One store file: its path, the clusters configured to write there, its retention."""

    path: str
    clusters: list[str] = field(default_factory=list)
    environments: set[str] = field(default_factory=set)
    policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    default: bool = False


def store_layouts(config: ServerConfig) -> list[StoreLayout]:
    """The store files of a server configuration, ``server.db`` first, with their retention.

    ``server.retention.default`` applies to clusters without a retention of their own in every
    file; ``server.retention.max_size`` caps ``server.db``, ``clusters[].max_size`` its own file.
    """
    default = parse_duration(config.retention.default) if config.retention.default else None
    main_cap = parse_size(config.retention.max_size) if config.retention.max_size else None
    main = StoreLayout(config.db, default=True, policy=RetentionPolicy(default, {}, main_cap))
    layouts: dict[str, StoreLayout] = {_key(config.db): main}
    for cluster in config.clusters:
        path = cluster.store or config.db
        layout = layouts.setdefault(_key(path), StoreLayout(path, policy=RetentionPolicy(default)))
        layout.clusters.append(cluster.name)
        if cluster.environment:
            layout.environments.add(cluster.environment)
        clusters = dict(layout.policy.clusters)
        if cluster.retention:
            clusters[cluster.name] = parse_duration(cluster.retention)
        cap = layout.policy.max_size
        if cluster.max_size:
            cap = parse_size(cluster.max_size)
        layout.policy = RetentionPolicy(default, clusters, cap)
    return list(layouts.values())


def _key(path: str) -> str:
    return path if path == ":memory:" else str(Path(path).resolve())


class RoutedStore:
    """The server's store: writes go to each cluster's file, its own reads to the main one
    (callers that know the cluster read :meth:`target`).

    Args:
        main: the store of ``server.db``.
        by_cluster: the stores of clusters configured with a file of their own.
    """

    dialect = "duckdb"

    def __init__(self, main: DuckDBStore, by_cluster: Mapping[str, DuckDBStore]) -> None:
        self.main = main
        self.by_cluster = dict(by_cluster)
        self.path = main.path

    @classmethod
    def open(cls, config: ServerConfig, opener: Callable[[str], DuckDBStore]) -> RoutedStore:
        """Open every store file of ``config`` (each once, however many clusters share it)."""
        opened: dict[str, DuckDBStore] = {}
        main = opened.setdefault(_key(config.db), opener(config.db))
        by_cluster = {}
        for cluster in config.clusters:
            if cluster.store:
                key = _key(cluster.store)
                if key not in opened:
                    opened[key] = opener(cluster.store)
                by_cluster[cluster.name] = opened[key]
        return cls(main, by_cluster)

    def stores(self) -> list[DuckDBStore]:
        """Every distinct store, the main one first."""
        out = [self.main]
        for store in self.by_cluster.values():
            if all(store is not s for s in out):
                out.append(store)
        return out

    def target(self, cluster: str) -> DuckDBStore:
        """The store a cluster's events go to."""
        return self.by_cluster.get(cluster, self.main)

    def write_batch(self, table: pa.Table, meta: BatchMeta) -> WriteResult:
        """Store a batch in its cluster's file."""
        return self.target(meta.cluster).write_batch(table, meta)

    def write_batches(self, tables: Iterable[pa.Table], meta: BatchMeta) -> WriteResult:
        """Store a batch of several tables in its cluster's file."""
        return self.target(meta.cluster).write_batches(tables, meta)

    def write_group(self, items: Sequence[tuple[pa.Table, BatchMeta]]) -> list[WriteResult]:
        """Store batches, one transaction per file, results in the order of ``items``."""
        by_store: dict[int, list[int]] = {}
        for i, (_, meta) in enumerate(items):
            by_store.setdefault(id(self.target(meta.cluster)), []).append(i)
        results: list[WriteResult | None] = [None] * len(items)
        for indexes in by_store.values():
            store = self.target(items[indexes[0]][1].cluster)
            written = store.write_group([items[i] for i in indexes])
            for i, result in zip(indexes, written, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run SQL on the main store."""
        return self.main.query(sql, params)

    def count(self, cluster: str | None = None) -> int:
        """Events of the main store (or of a cluster, in its own file)."""
        return (self.target(cluster) if cluster else self.main).count(cluster)

    def stats(self) -> StoreStats:
        """Counts of the main store."""
        return self.main.stats()

    def export(self, cluster: str | None = None) -> Iterator[str]:
        """Events of the main store (or of a cluster, from its own file)."""
        return (self.target(cluster) if cluster else self.main).export(cluster)

    def delete_older_than(self, cutoff: datetime, cluster: str | None = None) -> int:
        """Delete by time in the main store (or in a cluster's own file)."""
        return (self.target(cluster) if cluster else self.main).delete_older_than(cutoff, cluster)

    def close(self) -> None:
        """Close every store."""
        for store in self.stores():
            store.close()
