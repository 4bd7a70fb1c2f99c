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

``bytes_reclaimed`` is always an estimate (average bytes per event of the active parts):
ClickHouse frees the space of deleted rows when it merges parts, later. Size caps
(``max_size``) are not enforced on ClickHouse: they are refused with an error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .clickhouse_chain import ChainWriter, chain_clusters, decode_keys, key_strings, read_records
from .integrity import KIND_BATCH, KIND_RETENTION, REMOVAL_KINDS, ChainRecord
from .retention import Removal, RetentionPolicy, RetentionReport, _format_duration

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
    """Remove every cluster's events older than its retention, and record each removal.

    Args:
        store: the ClickHouse store.
        policy: retention per cluster (a size cap is refused).
        now: the current time (naive UTC or aware); default the clock. Tests pass a fake one.
        dry_run: report what would go; change nothing.
        actor: who asked (recorded in the chain record).

    Raises:
        ConfigError: the policy has a size cap (not available on ClickHouse).
        StoreError: ClickHouse failed.
    """
    if policy.max_size is not None:
        raise ConfigError("max_size: size caps are not enforced on ClickHouse stores")
    now = now.astimezone(UTC).replace(tzinfo=None) if now and now.tzinfo else now
    now = now or datetime.now(UTC).replace(tzinfo=None)
    used, per_event = _usage(store)
    report = RetentionReport(store=store_label(store), dry_run=dry_run, used_bytes_before=used)
    writer: ChainWriter | None = None
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
            continue
        writer = writer or ChainWriter(store, prefix="retention")
        record = writer.append(
            cluster=cluster,
            kind=KIND_RETENTION,
            batch_id=None,
            events=count,
            first_time=first,
            last_time=last,
            events_sha256=None,
            detail={
                "actor": actor,
                "reason": KIND_RETENTION,
                "cutoff": _iso(cutoff),
                "retention": removal.retention,
                "removed_before": _iso(bound),
                "removed_batches": removal.batches,
                "unchained_events": removal.unchained_events,
            },
        )
        removal.seq = record.seq
        store.delete_older_than(bound, cluster)
    report.used_bytes_after = (
        max(0, used - sum(r.bytes_reclaimed for r in report.removals))
        if dry_run
        else _usage(store)[0]
    )
    return report


def _plan(stored: list[Any], cutoff: datetime) -> tuple[datetime, list[ChainRecord]]:
    """The delete bound ``T`` and the batch records wholly before it (module docstring)."""
    records = [s.record for s in stored]
    removed = {b for r in records if r.kind in REMOVAL_KINDS for b in r.removed_batches()}
    live = []
    for r in records:
        if r.kind != KIND_BATCH or r.batch_id in removed:
            continue
        lo, hi = _parse(r.detail.get("request_first")), _parse(r.detail.get("request_last"))
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
    store: ClickHouseStore, cluster: str, bound: datetime
) -> tuple[int, datetime | None, datetime | None]:
    rows = _rows(
        store,
        "SELECT count(), min(stage_time), max(stage_time) FROM events "
        "WHERE cluster = {cluster:String} "
        "AND request_received < toDateTime64({bound:String}, 6, 'UTC')",
        {"cluster": cluster, "bound": bound.isoformat(sep=" ", timespec="microseconds")},
    )
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
    """Bytes on disk of the events' active parts, and per event."""
    table = "events_local" if store.cluster else "events"
    rows = _rows(
        store,
        "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts "
        "WHERE database = {db:String} AND table = {table:String} AND active",
        {"db": store.database, "table": table},
    )
    used, count = (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)
    return used, (used / count if count else 0.0)


def _rows(store: ClickHouseStore, sql: str, params: dict[str, Any]) -> list[Any]:
    from .clickhouse import _translated

    with _translated("retention failed"):
        return list(
            store._client.query(sql, parameters=params, settings=store.read_settings).result_rows
        )


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return None


def _naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"
