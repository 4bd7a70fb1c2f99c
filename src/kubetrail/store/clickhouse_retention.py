"""Retention on ClickHouse, recorded in the chain (``kubetrail retention apply``, the schedule).

Per cluster with a retention, a batch may go once its newest event (stage time) is older than
the cutoff (``now - retention``), as in the embedded store. ClickHouse deletes by a condition,
not by batch (rows of a batch may carry another collector's ``batch_id``, see
:mod:`kubetrail.store.clickhouse_chain`), so retention deletes every event of the cluster
received before a bound ``T``: the cutoff, lowered to the first request time of every batch
that must stay (not old enough, or reaching past ``T``). Every event before ``T`` then belongs
to a batch that is wholly old (or to no batch record at all: events written before the chain),
nothing younger than the retention goes, and the removal record names exactly the batches
whose every event lies before ``T``.

The record is written *before* the lightweight ``DELETE``: if the delete fails, ``verify``
reports ``events_after_removal`` and the next run deletes them (its bound is at least as late);
the other order could leave a removal no record explains. The record goes to a chain of the
retention run's own (writer ``retention-…``), so several servers may run the schedule at once.

A size cap (``max_size``) then evicts the oldest events of the store, whatever their cluster,
in whole batches, until the store is estimated about 10 % under the cap: the eviction picks a
stage-time cutoff ``C`` (one past the newest event of the newest batch it takes, the same for
every cluster) and removes per cluster exactly as retention does with the cutoff ``C``, so the
``eviction`` record has retention's shape (``cutoff``, ``removed_before``, ``removed_batches``)
plus ``max_size`` and ``used_bytes``. The smallest ``C`` that frees enough is found by
bisection over the batches' newest events (what goes only grows with ``C``).

Bytes are estimates. ClickHouse frees deleted rows' space only when it merges parts, so the
store's size is measured as the active parts of every table of the database (``system.parts``;
on a ``Distributed`` layout, one replica of each shard) with the events table's share scaled
to the events still visible: ``bytes_on_disk / rows`` of the events' parts (rows deleted but
not merged away included) times the events ``count()``. A lightweight delete thus lowers the
estimate at once, and the next run does not evict again what is already deleted.
``bytes_reclaimed`` is that bytes-per-event times the events removed (``"estimated": true``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .clickhouse_chain import (
    CHAIN_TABLE,
    ChainWriter,
    chain_clusters,
    decode_keys,
    key_strings,
    read_records,
)
from .integrity import (
    KIND_BATCH,
    KIND_EVICTION,
    KIND_RETENTION,
    REMOVAL_KINDS,
    ChainRecord,
    chain_time,
    parse_chain_time,
)
from .retention import (
    _EVICT_MARGIN,
    Removal,
    RetentionPolicy,
    RetentionReport,
    _format_duration,
)

if TYPE_CHECKING:
    from .clickhouse import ClickHouseStore


def store_label(store: ClickHouseStore) -> str:
    """How reports name a ClickHouse store: its URL and database."""
    return f"{store.url}/{store.database}"


def apply_clickhouse_retention(
    store: ClickHouseStore,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "kubetrail retention apply",
) -> RetentionReport:
    """Remove every cluster's events older than its retention, then enforce the size cap;
    record each removal.

    Args:
        store: the ClickHouse store.
        policy: retention per cluster and the store's size cap.
        now: the current time (naive UTC or aware); default the clock. Tests pass a fake one.
        dry_run: report what would go; change nothing.
        actor: who asked (recorded in the chain record).

    Raises:
        StoreError: ClickHouse failed.
    """
    now = now.astimezone(UTC).replace(tzinfo=None) if now and now.tzinfo else now
    now = now or datetime.now(UTC).replace(tzinfo=None)
    used, per_event = _usage(store)
    report = RetentionReport(
        store=store_label(store), dry_run=dry_run, used_bytes_before=used, max_size=policy.max_size
    )
    writers: list[ChainWriter] = []
    # In a dry run, what retention would remove: its batches and the bound below which it goes.
    planned: dict[str, tuple[set[str], datetime]] = {}
    for cluster in chain_clusters(store):
        retention = policy.for_cluster(cluster)
        if retention is None:
            continue
        cutoff = now - retention
        bound, batches = _plan(read_records(store, cluster, with_keys=False), cutoff)
        count, first, last = _old_events(store, cluster, bound)
        if not count and not batches:
            continue
        covered = _covered(store, cluster, batches)
        removal = Removal(
            cluster=cluster,
            kind=KIND_RETENTION,
            events=count,
            batches=[str(b.batch_id) for b in batches],
            first_time=first,
            last_time=last,
            cutoff=cutoff,
            retention=_format_duration(retention),
            unchained_events=max(0, count - covered),
            bytes_reclaimed=int(count * per_event),
            estimated=True,
        )
        report.removals.append(removal)
        if dry_run:
            planned[cluster] = (set(removal.batches), bound)
            continue
        _remove(store, _writer(store, writers), removal, bound, actor, retention=removal.retention)
    if policy.max_size is not None:
        _evict(store, policy.max_size, report, planned, writers, per_event, dry_run, actor)
    report.used_bytes_after = (
        max(0, used - sum(r.bytes_reclaimed for r in report.removals))
        if dry_run
        else _usage(store)[0]
    )
    return report


def _evict(
    store: ClickHouseStore,
    max_size: int,
    report: RetentionReport,
    planned: dict[str, tuple[set[str], datetime]],
    writers: list[ChainWriter],
    per_event: float,
    dry_run: bool,
    actor: str,
) -> None:
    """Evict the oldest batches of every cluster until about 10 % under ``max_size``."""
    used = report.used_bytes_before - sum(r.bytes_reclaimed for r in report.removals)
    if used <= max_size or per_event <= 0:
        return
    goal = (used - int(max_size * _EVICT_MARGIN)) / per_event  # events to remove
    stored = {c: read_records(store, c, with_keys=False) for c in chain_clusters(store)}
    gone_already = {c: planned.get(c, (set(), None))[0] for c in stored}
    floors = {c: bound for c, (_, bound) in planned.items()}

    def plan(cutoff: datetime) -> dict[str, tuple[datetime, list[ChainRecord], tuple[Any, ...]]]:
        out = {}
        for cluster, records in stored.items():
            bound, batches = _plan(records, cutoff, gone_already[cluster])
            found = _old_events(store, cluster, bound, floors.get(cluster))
            out[cluster] = (bound, batches, found)
        return out

    lasts = {
        r.last_time
        for cluster, records in stored.items()
        for r in _live(records, gone_already[cluster])
        if r.last_time is not None
    }
    candidates = sorted(t + timedelta(microseconds=1) for t in lasts)
    if not candidates:
        return
    lo, hi = 0, len(candidates) - 1  # the smallest cutoff that frees enough, else the largest
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(found[0] for _, _, found in plan(candidates[mid]).values()) >= goal:
            hi = mid
        else:
            lo = mid + 1
    cutoff = candidates[lo]
    for cluster, (bound, batches, (count, first, last)) in plan(cutoff).items():
        if not count and not batches:
            continue
        removal = Removal(
            cluster=cluster,
            kind=KIND_EVICTION,
            events=count,
            batches=[str(b.batch_id) for b in batches],
            first_time=first,
            last_time=last,
            cutoff=cutoff,
            unchained_events=max(0, count - _covered(store, cluster, batches)),
            bytes_reclaimed=int(count * per_event),
            estimated=True,
        )
        report.removals.append(removal)
        if dry_run:
            continue
        writer = _writer(store, writers)
        _remove(store, writer, removal, bound, actor, max_size=max_size, used_bytes=used)


def _remove(
    store: ClickHouseStore,
    writer: ChainWriter,
    removal: Removal,
    bound: datetime,
    actor: str,
    **extra: Any,
) -> None:
    """Record a removal in the run's chain, then delete the cluster's events received before
    ``bound`` and drop the removed batches' keys. The record comes first: a delete that fails
    leaves events a removal record names, which ``verify`` reports and the next run removes."""
    record = writer.append(
        cluster=removal.cluster,
        kind=removal.kind,
        batch_id=None,
        events=removal.events,
        first_time=removal.first_time,
        last_time=removal.last_time,
        events_sha256=None,
        detail={
            "actor": actor,
            "reason": removal.kind,
            "cutoff": chain_time(removal.cutoff),
            "removed_before": chain_time(bound),
            "removed_batches": removal.batches,
            "unchained_events": removal.unchained_events,
            **extra,
        },
    )
    removal.seq = record.seq
    store.delete_older_than(bound, removal.cluster)
    forget_keys(store, removal.cluster, removal.batches)


def forget_keys(store: ClickHouseStore, cluster: str, batch_ids: list[str]) -> None:
    """Drop the stored keys of batch records whose events a removal record took away.

    The keys (about 30 bytes per event) exist so that ``verify`` can find a record's events;
    once its events are removed, the record stays (the chain needs it) but its keys are dead
    weight that would outgrow the events kept. The record's hash covers only the keys' SHA-256,
    so the chain still verifies; an event of such a batch that reappears is then reported as
    ``events_outside_chain`` instead of ``events_after_removal``.
    """
    from .clickhouse import _translated

    if not batch_ids:
        return
    with _translated("cannot drop the keys of removed batches"):
        store._client.command(
            f"ALTER TABLE `{store.database}`.{CHAIN_TABLE} UPDATE keys = '' "
            "WHERE cluster = {cluster:String} AND kind = {kind:String} "
            "AND batch_id IN {ids:Array(String)}",
            parameters={"cluster": cluster, "kind": KIND_BATCH, "ids": list(batch_ids)},
            settings={"mutations_sync": 1},  # the chain table is small; the run reports after
        )


def _writer(store: ClickHouseStore, writers: list[ChainWriter]) -> ChainWriter:
    """The run's own chain writer (made at its first record)."""
    if not writers:
        writers.append(ChainWriter(store, prefix="retention"))
    return writers[0]


def _live(stored: list[Any], gone: set[str]) -> list[ChainRecord]:
    """Batch records not removed (by a removal record, or by ``gone``)."""
    records = [s.record for s in stored]
    removed = {b for r in records if r.kind in REMOVAL_KINDS for b in r.removed_batches()}
    removed |= gone
    return [r for r in records if r.kind == KIND_BATCH and r.batch_id not in removed]


def _plan(
    stored: list[Any], cutoff: datetime, gone: set[str] | None = None
) -> tuple[datetime, list[ChainRecord]]:
    """The delete bound ``T`` and the batch records wholly before it (module docstring).

    ``gone``: batches to count as removed already (what a dry run's retention would remove).
    """
    live = []
    for r in _live(stored, gone or set()):
        lo, hi = (
            parse_chain_time(r.detail.get("request_first")),
            parse_chain_time(r.detail.get("request_last")),
        )
        if lo is not None and hi is not None:
            live.append((r, lo, hi))
    bound = cutoff
    while True:
        staying = [
            lo
            for r, lo, hi in live
            if not (r.last_time is not None and r.last_time < cutoff and hi < bound)
        ]
        lower = min([bound, *staying])
        if lower == bound:
            break
        bound = lower
    gone = [
        r for r, _, hi in live if r.last_time is not None and r.last_time < cutoff and hi < bound
    ]
    return bound, gone


def _old_events(
    store: ClickHouseStore, cluster: str, bound: datetime, floor: datetime | None = None
) -> tuple[int, datetime | None, datetime | None]:
    """Count and stage-time range of the cluster's events received before ``bound`` (and not
    before ``floor``: what a dry run's retention already counted)."""
    sql = (
        "SELECT count(), min(stage_time), max(stage_time) FROM events "
        "WHERE cluster = {cluster:String} "
        "AND request_received < toDateTime64({bound:String}, 6, 'UTC')"
    )
    params = {"cluster": cluster, "bound": bound.isoformat(sep=" ", timespec="microseconds")}
    if floor is not None:
        sql += " AND request_received >= toDateTime64({floor:String}, 6, 'UTC')"
        params["floor"] = floor.isoformat(sep=" ", timespec="microseconds")
    rows = _rows(store, sql, params)
    count, first, last = rows[0] if rows else (0, None, None)
    return int(count), _naive(first) if count else None, _naive(last) if count else None


def _covered(store: ClickHouseStore, cluster: str, batches: list[ChainRecord]) -> int:
    """Distinct event keys the removed batches cover (copies of a retried batch count once)."""
    if not batches:
        return 0
    wanted = {(b.batch_id, b.seq, b.detail.get("writer")) for b in batches}
    keys: set[str] = set()
    for s in read_records(store, cluster):
        r = s.record
        if (r.batch_id, r.seq, s.writer) in wanted:
            try:
                table = decode_keys(s.keys)
            except ValueError:
                continue
            found = key_strings(table.column("audit_id"), table.column("stage"), table.column("t"))
            keys.update(found.to_pylist())
    return len(keys)


def _usage(store: ClickHouseStore) -> tuple[int, float]:
    """The store's estimated bytes, and the events' bytes per event (module docstring).

    On a ``Distributed`` layout the parts of one replica of each shard are summed
    (``cluster()``), so replicas are not counted twice.
    """
    table = "events_local" if store.cluster else "events"
    parts = f"cluster(`{store.cluster}`, system.parts)" if store.cluster else "system.parts"
    rows = _rows(
        store,
        "SELECT sum(bytes_on_disk), sumIf(bytes_on_disk, table = {table:String}), "
        f"sumIf(rows, table = {{table:String}}) FROM {parts} "
        "WHERE database = {db:String} AND active",
        {"db": store.database, "table": table},
    )
    total, events_bytes, part_rows = (int(v or 0) for v in rows[0]) if rows else (0, 0, 0)
    per_event = events_bytes / part_rows if part_rows else 0.0
    visible = int(
        _rows(store, "SELECT count() FROM events", {}, settings={"final": 0})[0][0]
    )  # deleted rows not merged away yet are not visible
    return total - events_bytes + int(per_event * visible), per_event


def _rows(
    store: ClickHouseStore,
    sql: str,
    params: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> list[Any]:
    from .clickhouse import EXACT_READ_SETTINGS, _translated

    # FINAL whatever the store's reads: recorded counts must not include unmerged copies.
    settings = {**EXACT_READ_SETTINGS, **(settings or {})}
    with _translated("retention failed"):
        return list(store._client.query(sql, parameters=params, settings=settings).result_rows)


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
