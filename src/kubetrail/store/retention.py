"""Retention per cluster and size caps, as removals recorded in the hash chain.

Retention works on whole batches: a batch goes once its newest event is older than its
cluster's cutoff (``now - retention``), so nothing younger than the retention is ever removed,
and the chain can state exactly what went (the batch ids) and stay verifiable. Events of a
batch that straddles the cutoff stay until the whole batch has aged out. Events that no chain
record covers (stores written before the chain existed) are removed by their request time.

A size cap (``max_size``) evicts the oldest batches of the store, whatever their cluster, until
the database's used blocks are under the cap; evictions are chain records too, and callers
count them in a warning metric (``kubetrail_store_evicted_events``).

Each removal is one transaction (events deleted and the record appended together), then a
checkpoint frees the blocks: ``bytes_reclaimed`` is measured, not estimated, except in a dry run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..errors import ConfigError
from .integrity import (
    KIND_BATCH,
    KIND_EVICTION,
    KIND_RETENTION,
    REMOVAL_KINDS,
    ChainRecord,
    chain_time,
)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
#: Evictions aim this far under the cap, so that the next write does not evict again at once.
_EVICT_MARGIN = 0.9


def parse_duration(text: str, key: str = "retention") -> timedelta:
    """Read ``400d``, ``12h``, ``2w``, ``30m`` or ``90s``.

    Raises:
        ConfigError: not a whole number followed by one of s, m, h, d, w.
    """
    match = _DURATION.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{key}: {text!r} is not a duration like 400d, 12h or 2w")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_size(text: str | int, key: str = "max_size") -> int:
    """Read a byte size: ``50GB``, ``500MiB``, ``1.5G`` or a plain number of bytes.

    Raises:
        ConfigError: not a positive size.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"{key}: {text!r} is not a size like 50GB or 500MiB")
    unit = (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = " kmgt".index(unit[0]) if unit and unit[0] in "kmgt" else 0
    size = int(float(match.group(1)) * base**power)
    if size <= 0:
        raise ConfigError(f"{key}: {text!r} must be more than 0 bytes")
    return size


class RetentionStore(Protocol):
    """What retention needs of an engine (``DuckDBStore`` offers it)."""

    path: str

    def chain_clusters(self) -> list[str]: ...

    def chain_records(self, cluster: str) -> list[ChainRecord]: ...

    def remove_batches(
        self,
        cluster: str,
        batch_ids: list[str],
        *,
        kind: str,
        detail: Mapping[str, Any],
        unchained_before: datetime | None = None,
        at: datetime | None = None,
    ) -> ChainRecord: ...

    def count_unchained_before(self, cluster: str, cutoff: datetime) -> int: ...

    def used_bytes(self) -> int: ...

    def count(self, cluster: str | None = None) -> int: ...

    def checkpoint(self) -> None: ...


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each cluster's events are kept, and the store's size cap.

    Attributes:
        default: retention of clusters without their own (``None``: keep forever).
        clusters: retention by cluster name.
        max_size: the store's size cap in bytes (``None``: no cap).
    """

    default: timedelta | None = None
    clusters: Mapping[str, timedelta] = field(default_factory=dict)
    max_size: int | None = None

    def for_cluster(self, cluster: str) -> timedelta | None:
        """The retention that applies to ``cluster``."""
        return self.clusters.get(cluster, self.default)


@dataclass
class Removal:
    """What retention or eviction removed (or would remove) from one cluster.

    ``bytes_reclaimed`` is measured after a checkpoint; in a dry run it is an estimate from the
    store's average bytes per event, and ``estimated`` says so.
    """

    cluster: str
    kind: str
    events: int
    batches: list[str]
    first_time: datetime | None
    last_time: datetime | None
    cutoff: datetime | None = None
    retention: str | None = None
    unchained_events: int = 0
    bytes_reclaimed: int = 0
    estimated: bool = False
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one entry of ``kubetrail retention apply --format json``."""
        return {
            "cluster": self.cluster,
            "kind": self.kind,
            "events": self.events,
            "batches": len(self.batches),
            "first_time": chain_time(self.first_time),
            "last_time": chain_time(self.last_time),
            "cutoff": chain_time(self.cutoff),
            "retention": self.retention,
            "unchained_events": self.unchained_events,
            "bytes_reclaimed": self.bytes_reclaimed,
            "estimated": self.estimated,
            "chain_seq": self.seq,
        }


@dataclass
class RetentionReport:
    """The outcome of :func:`apply_retention` on one store."""

    store: str
    dry_run: bool
    removals: list[Removal] = field(default_factory=list)
    used_bytes_before: int = 0
    used_bytes_after: int = 0
    max_size: int | None = None

    @property
    def evicted(self) -> dict[str, int]:
        """Events evicted by the size cap, by cluster (what the warning metric counts)."""
        out: dict[str, int] = {}
        for r in self.removals:
            if r.kind == KIND_EVICTION:
                out[r.cluster] = out.get(r.cluster, 0) + r.events
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``kubetrail retention apply --format json`` for one store."""
        return {
            "store": self.store,
            "dry_run": self.dry_run,
            "removed": [r.as_dict() for r in self.removals],
            "used_bytes_before": self.used_bytes_before,
            "used_bytes_after": self.used_bytes_after,
            "max_size": self.max_size,
        }


def apply_retention(
    store: RetentionStore,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "kubetrail retention apply",
) -> RetentionReport:
    """Remove every cluster's batches older than its retention, then enforce the size cap.

    On ClickHouse this is :func:`kubetrail.store.clickhouse_retention.apply_clickhouse_retention`
    (removal by a time bound, recorded in a chain of the run's own; size caps by an estimate).

    Args:
        store: the store (one file: per-cluster stores are separate calls), or a ClickHouse store.
        policy: retention per cluster and the size cap.
        now: the current time (naive UTC or aware); default the clock. Tests pass a fake one.
        dry_run: report what would go, change nothing.
        actor: who asked (recorded in the chain record).

    Returns:
        What was removed (or would be), per cluster, with counts, time ranges and bytes.
    """
    if getattr(store, "dialect", None) == "clickhouse":
        from .clickhouse_retention import apply_clickhouse_retention

        return apply_clickhouse_retention(
            store,  # type: ignore[arg-type]
            policy,
            now=now,
            dry_run=dry_run,
            actor=actor,
        )
    now = _naive_utc(now or datetime.now(UTC))
    store.checkpoint()  # so that the used blocks count what is stored, not the WAL
    used = store.used_bytes()
    total = store.count()
    per_event = used / total if total else 0.0
    report = RetentionReport(
        store=store.path, dry_run=dry_run, used_bytes_before=used, max_size=policy.max_size
    )
    live: dict[str, list[ChainRecord]] = {}
    for cluster in store.chain_clusters():
        batches = _live_batches(store.chain_records(cluster))
        retention = policy.for_cluster(cluster)
        if retention is not None:
            cutoff = now - retention
            old = [b for b in batches if b.last_time is not None and b.last_time < cutoff]
            unchained = store.count_unchained_before(cluster, cutoff)
            if old or unchained:
                removal = _removal(cluster, KIND_RETENTION, old, cutoff, unchained)
                removal.retention = _format_duration(retention)
                _carry_out(store, removal, dry_run, per_event, actor)
                report.removals.append(removal)
                gone = set(removal.batches)
                batches = [b for b in batches if b.batch_id not in gone]
        live[cluster] = batches
    if policy.max_size is not None:
        _evict(store, policy.max_size, live, report, dry_run, per_event, actor)
    if dry_run:
        freed = sum(r.bytes_reclaimed for r in report.removals)
        report.used_bytes_after = max(0, report.used_bytes_before - freed)
    else:
        report.used_bytes_after = store.used_bytes()
    return report


def _evict(
    store: RetentionStore,
    max_size: int,
    live: dict[str, list[ChainRecord]],
    report: RetentionReport,
    dry_run: bool,
    per_event: float,
    actor: str,
) -> None:
    used = report.used_bytes_before - sum(r.bytes_reclaimed for r in report.removals)
    if used <= max_size or per_event <= 0:
        return
    goal = used - int(max_size * _EVICT_MARGIN)
    oldest = sorted(
        (b for batches in live.values() for b in batches),
        key=lambda b: (b.last_time or datetime.min, b.cluster, b.seq),
    )
    chosen: dict[str, list[ChainRecord]] = {}
    freed = 0.0
    for batch in oldest:
        if freed >= goal:
            break
        chosen.setdefault(batch.cluster, []).append(batch)
        freed += batch.events * per_event
    for cluster, batches in chosen.items():
        removal = _removal(cluster, KIND_EVICTION, batches, None, 0)
        extra = {"max_size": max_size, "used_bytes": used}
        _carry_out(store, removal, dry_run, per_event, actor, extra=extra)
        report.removals.append(removal)


def _live_batches(records: list[ChainRecord]) -> list[ChainRecord]:
    removed = {b for r in records if r.kind in REMOVAL_KINDS for b in r.removed_batches()}
    return [r for r in records if r.kind == KIND_BATCH and r.batch_id not in removed]


def _removal(
    cluster: str, kind: str, batches: list[ChainRecord], cutoff: datetime | None, unchained: int
) -> Removal:
    firsts = [b.first_time for b in batches if b.first_time is not None]
    lasts = [b.last_time for b in batches if b.last_time is not None]
    return Removal(
        cluster=cluster,
        kind=kind,
        events=sum(b.events for b in batches) + unchained,
        batches=[str(b.batch_id) for b in batches],
        first_time=min(firsts) if firsts else None,
        last_time=max(lasts) if lasts else None,
        cutoff=cutoff,
        unchained_events=unchained,
    )


def _carry_out(
    store: RetentionStore,
    removal: Removal,
    dry_run: bool,
    per_event: float,
    actor: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    if dry_run:
        removal.bytes_reclaimed = int(removal.events * per_event)
        removal.estimated = True
        return
    before = store.used_bytes()
    detail: dict[str, Any] = {"actor": actor, "reason": removal.kind, **(extra or {})}
    if removal.cutoff is not None:
        detail.update(cutoff=chain_time(removal.cutoff), retention=removal.retention)
    record = store.remove_batches(
        removal.cluster,
        removal.batches,
        kind=removal.kind,
        detail=detail,
        unchained_before=removal.cutoff if removal.unchained_events else None,
    )
    store.checkpoint()
    removal.events = record.events
    removal.first_time, removal.last_time = record.first_time, record.last_time
    removal.seq = record.seq
    removal.bytes_reclaimed = max(0, before - store.used_bytes())


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda kv: -kv[1]):
        if unit != "w" and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # pragma: no cover
