"""``kubetrail verify`` on ClickHouse: every (cluster, writer) chain, and what they cover together.

Per cluster, :func:`verify_clickhouse`

1. checks each writer's chain as the embedded store's is checked (sequence without gaps, links,
   record hashes, times), and that each record's stored keys match the SHA-256 its hashed
   ``detail`` carries;
2. checks removal records (retention, eviction) against the batches the chains recorded: each
   named batch exists, is older than the cutoff, and lies wholly before the time the removal
   deleted up to; an eviction kept no batch wholly before that time (oldest first); with the
   configured policy, a retention's cutoff and that an eviction had a size cap;
3. streams the cluster's events with ``FINAL`` in key order (request time, auditID, stage),
   matches each to the records whose keys cover it, and hashes each record's events as they
   pass: a record that finds fewer events than it counted fails ``events_removed``, other bytes
   ``events_changed``; an event no live record covers is ``events_outside_chain`` (reported by
   the ``batch_id`` its row carries), one only removed records cover ``events_after_removal``.

Copies of a retried batch written by two collectors satisfy both their records whichever copy
survives: records cover keys and content, not rows. One pass over the events, one hash update
per record and block.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .clickhouse_chain import (
    StoredRecord,
    StreamDigest,
    Values,
    chain_clusters,
    decode_keys,
    events_ttl,
    key_strings,
    keys_sha256,
    read_records,
)
from .integrity import (
    KIND_BATCH,
    KIND_EVICTION,
    REMOVAL_KINDS,
    ChainRecord,
    chain_time,
    parse_chain_time,
)
from .verify import SKEW, ClusterResult, Problem, VerifyReport, check_links, check_policy

if TYPE_CHECKING:
    from .clickhouse import ClickHouseStore
    from .retention import RetentionPolicy

_BLOCK_ROWS = 65_536


def verify_clickhouse(
    store: ClickHouseStore,
    cluster: str | None = None,
    *,
    policy: RetentionPolicy | None = None,
    now: datetime | None = None,
) -> VerifyReport:
    """Verify one cluster or every cluster of a ClickHouse store (see the module docstring).

    Args:
        store: the ClickHouse store.
        cluster: only this cluster; default every cluster with a chain or events.
        policy: the configured retention; when given, removal records are checked against it.
        now: the current time (naive UTC), for the check that no record is from the future.

    Returns:
        The report; ``report.ok`` is false when anything failed.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    report = VerifyReport()
    ttl = events_ttl(store)
    if ttl:
        report.problems.append(
            Problem(
                "*",
                "ttl_unrecorded",
                f"the events table has a TTL ({ttl}): ClickHouse removes those events without "
                "a chain record. Remove it (ALTER TABLE events REMOVE TTL) and let "
                "`kubetrail retention apply` or the server's schedule remove old events",
            )
        )
    for name in [cluster] if cluster is not None else chain_clusters(store):
        result, problems = _verify_cluster(store, name, policy, now)
        report.clusters[name] = result
        report.problems.extend(problems)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Live:
    """A live batch record while the events stream past."""

    stored: StoredRecord
    digest: StreamDigest = field(default_factory=StreamDigest)

    @property
    def found(self) -> int:
        """Events of the record found so far."""
        return self.digest.count


def _verify_cluster(
    store: ClickHouseStore, cluster: str, policy: RetentionPolicy | None, now: datetime
) -> tuple[ClusterResult, list[Problem]]:
    stored = read_records(store, cluster)
    result = ClusterResult(records=len(stored))
    problems: list[Problem] = []
    chains: dict[str, list[StoredRecord]] = {}
    for s in stored:
        chains.setdefault(s.writer, []).append(s)
    for writer, chain in chains.items():
        found = check_links(cluster, [s.record for s in chain], now)
        problems += [replace(p, detail=f"writer {writer}: {p.detail}") for p in found]
        result.heads[writer] = (chain[-1].record.seq, chain[-1].record.record_hash)
        for s in chain:
            if s.record.detail.get("writer") != writer:
                problems.append(
                    Problem.at(s.record, "record_altered", f"writer {writer}: not its own")
                )
    result.head_seq = len(stored) - 1
    result.head = hashlib.sha256(
        "\n".join(f"{w}:{s}:{h}" for w, (s, h) in sorted(result.heads.items())).encode()
    ).hexdigest()
    batches = [s for s in stored if s.record.kind == KIND_BATCH and s.record.batch_id]
    removed_ids = _check_removals(cluster, stored, batches, policy, problems, result)
    live = [s for s in batches if s.record.batch_id not in removed_ids]
    gone = [s for s in batches if s.record.batch_id in removed_ids]
    result.batches = len(live)
    live_keys = _key_index(cluster, live, problems)
    gone_keys = _key_index(cluster, gone, [])
    states = [_Live(s) for s in live]
    outside: dict[str | None, list[Any]] = {}
    after: dict[int, int] = {}
    for block in _stream(store, cluster):
        keys = key_strings(block.column("audit_id"), block.column("stage"), block.column("t"))
        times = block.column("t").to_numpy(zero_copy_only=False)
        rows, recs = live_keys.lookup(keys, times)
        result.events += len(np.unique(rows))
        _hash(states, block.column("raw"), rows, recs)
        rest = np.setdiff1d(np.arange(block.num_rows), rows, assume_unique=False)
        if len(rest):
            g_rows, g_recs = gone_keys.lookup(pc.take(keys, rest), times[rest])
            for rec in g_recs.tolist():
                after[rec] = after.get(rec, 0) + 1
            rest = np.setdiff1d(rest, rest[g_rows]) if len(g_rows) else rest
        if len(rest):
            _note_outside(outside, block.take(pa.array(rest)))
    for state in states:
        record = state.stored.record
        if state.found != record.events:
            kind = "events_removed" if state.found < record.events else "events_inserted"
            detail = f"the store holds {state.found} of the batch's {record.events} event(s)"
            problems.append(Problem.at(record, kind, detail))
        elif state.digest.hexdigest() != record.events_sha256:
            problems.append(
                Problem.at(
                    record, "events_changed", "the events' SHA-256 differs from the record's"
                )
            )
    for rec, count in after.items():
        record = gone[rec].record
        problems.append(
            Problem.at(
                record, "events_after_removal", f"{count} event(s) remain of a removed batch"
            )
        )
    for batch_id, (count, first, last) in outside.items():
        problems.append(
            Problem(
                cluster,
                "events_outside_chain",
                f"{count} event(s) of batch {batch_id!r}, which no chain record covers",
                batch_id=batch_id,
                first_time=first,
                last_time=last,
            )
        )
    return result, problems


def _check_removals(
    cluster: str,
    stored: list[StoredRecord],
    batches: list[StoredRecord],
    policy: RetentionPolicy | None,
    problems: list[Problem],
    result: ClusterResult,
) -> set[str]:
    """Check every removal record; return the batch ids validly removed.

    Removals of one batch by two retention runs (two servers on one schedule) are allowed.
    """
    by_id: dict[str, list[ChainRecord]] = {}
    for s in batches:
        by_id.setdefault(str(s.record.batch_id), []).append(s.record)
    removed: set[str] = set()
    removals = sorted(
        (s.record for s in stored if s.record.kind in REMOVAL_KINDS),
        key=lambda r: r.at or datetime.min,
    )
    for record in removals:
        result.removed_events += record.events
        if policy is not None:
            problems += check_policy(cluster, record, policy)
        cutoff = parse_chain_time(record.detail.get("cutoff"))
        before = parse_chain_time(record.detail.get("removed_before")) or cutoff
        for batch_id in record.removed_batches():
            found = [
                b for b in by_id.get(batch_id, []) if b.at is None or record.at is None
                or b.at <= record.at + SKEW
            ]  # fmt: skip
            problem = None
            if not found:
                problem = f"names batch {batch_id!r}, which no earlier record of a chain covers"
            elif cutoff is None or any(
                b.last_time is not None and b.last_time >= cutoff for b in found
            ):
                problem = (
                    f"removes batch {batch_id!r}, not older than its cutoff {chain_time(cutoff)}"
                )
            elif before is None or any(
                (parse_chain_time(b.detail.get("request_last")) or datetime.max) >= before
                for b in found
            ):
                problem = f"removes batch {batch_id!r}, not wholly before {chain_time(before)}"
            if problem is None:
                removed.add(batch_id)
                continue
            problems.append(
                Problem.at(
                    record,
                    "removal_invalid",
                    f"{record.kind} record {problem}",
                    batch_id=batch_id,
                )
            )
        if record.kind == KIND_EVICTION:
            problems += _kept_older(cluster, record, batches, removed, before)
    result.removed_batches = len(removed)
    return removed


def _kept_older(
    cluster: str,
    record: ChainRecord,
    batches: list[StoredRecord],
    removed: set[str],
    before: datetime | None,
) -> list[Problem]:
    """An eviction takes the oldest first: it deletes every event received before its
    ``removed_before``, so no batch recorded before it and kept may lie wholly before that."""
    if before is None or record.at is None:
        return []
    for s in batches:
        b = s.record
        last = parse_chain_time(b.detail.get("request_last"))
        if (
            b.batch_id not in removed
            and b.at is not None
            and b.at < record.at
            and last is not None
            and last < before
        ):
            return [
                Problem.at(
                    record,
                    "removal_invalid",
                    f"eviction record kept the older batch {b.batch_id!r} (received before "
                    f"{chain_time(before)}, which it removed up to)",
                    batch_id=b.batch_id,
                )
            ]
    return []


class _KeyIndex:
    """Keys of a set of records, sorted by request time, for lookups of a block of events."""

    def __init__(self, times: np.ndarray, keys: pa.Array, recs: np.ndarray) -> None:
        order = np.argsort(times, kind="stable")
        self.times = times[order]
        self.keys = pc.take(keys, pa.array(order)) if len(order) else keys
        self.recs = recs[order]
        # Keys two records cover (a retried batch stored by two collectors): every record.
        counts = pa.table({"k": self.keys}).group_by("k").aggregate([([], "count_all")])
        twice = counts.filter(pc.greater(counts.column("count_all"), 1)).column("k")
        self.twice = twice.combine_chunks() if isinstance(twice, pa.ChunkedArray) else twice
        self.all_of: dict[str, list[int]] = {}
        if len(self.twice):
            where = np.flatnonzero(pc.is_in(self.keys, value_set=self.twice).to_numpy(False))
            for i in where.tolist():
                self.all_of.setdefault(self.keys[i].as_py(), []).append(int(self.recs[i]))

    def lookup(self, keys: pa.Array, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, record) pairs for every record covering each row's key, by record then row."""
        empty = np.empty(0, np.int64), np.empty(0, np.int64)
        if len(times) == 0 or len(self.times) == 0:
            return empty
        lo = int(np.searchsorted(self.times, times.min(), "left"))
        hi = int(np.searchsorted(self.times, times.max(), "right"))
        if lo == hi:
            return empty
        found = pc.index_in(keys, value_set=self.keys[lo:hi])
        rows = np.flatnonzero(found.is_valid().to_numpy(zero_copy_only=False))
        recs = self.recs[lo + pc.drop_null(found).to_numpy().astype(np.int64)]
        if self.all_of and len(rows):
            again = pc.is_in(pc.take(keys, pa.array(rows)), value_set=self.twice)
            several = np.flatnonzero(again.to_numpy(zero_copy_only=False))
            if len(several):
                keep = np.ones(len(rows), bool)
                keep[several] = False
                extra_rows, extra_recs = [rows[keep]], [recs[keep]]
                for i in several.tolist():
                    owners = self.all_of[keys[int(rows[i])].as_py()]
                    extra_rows.append(np.full(len(owners), rows[i]))
                    extra_recs.append(np.array(owners, np.int64))
                rows, recs = np.concatenate(extra_rows), np.concatenate(extra_recs)
        order = np.lexsort((rows, recs))
        return rows[order], recs[order]


def _key_index(cluster: str, records: list[StoredRecord], problems: list[Problem]) -> _KeyIndex:
    times, keys, recs = [], [], []
    for i, s in enumerate(records):
        record = s.record
        if keys_sha256(s.keys) != record.detail.get("keys_sha256"):
            problems.append(Problem.at(record, "record_altered", "its keys do not match its hash"))
            continue
        try:
            table = decode_keys(s.keys)
        except ValueError as exc:
            problems.append(Problem.at(record, "record_altered", str(exc)))
            continue
        times.append(table.column("t").to_numpy(zero_copy_only=False))
        keys.append(key_strings(table.column("audit_id"), table.column("stage"), table.column("t")))
        recs.append(np.full(table.num_rows, i, dtype=np.int64))
    if not keys:
        return _KeyIndex(np.empty(0, np.int64), pa.array([], pa.string()), np.empty(0, np.int64))
    return _KeyIndex(
        np.concatenate(times),
        pa.concat_arrays(
            [k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k for k in keys]
        ),
        np.concatenate(recs),
    )


def _hash(states: list[_Live], raw: Any, rows: np.ndarray, recs: np.ndarray) -> None:
    """Feed each record its rows of the block, in block (= key) order."""
    if not len(rows):
        return
    values = Values(raw)
    breaks = np.flatnonzero(np.diff(recs)) + 1
    for start, end in zip(np.r_[0, breaks], np.r_[breaks, len(recs)], strict=True):
        states[int(recs[start])].digest.update(values, rows[start:end])


def _note_outside(outside: dict[str | None, list[Any]], rows: pa.Table) -> None:
    grouped = rows.group_by("batch_id").aggregate(
        [([], "count_all"), ("stage_time", "min"), ("stage_time", "max")]
    )
    for item in grouped.to_pylist():
        batch_id = item["batch_id"]
        count, first, last = item["count_all"], item["stage_time_min"], item["stage_time_max"]
        seen = outside.get(batch_id)
        if seen is None:
            outside[batch_id] = [count, first, last]
        else:
            seen[0] += count
            seen[1] = min(x for x in (seen[1], first) if x is not None) if first else seen[1]
            seen[2] = max(x for x in (seen[2], last) if x is not None) if last else seen[2]


def _stream(store: ClickHouseStore, cluster: str) -> Iterable[pa.Table]:
    from .clickhouse import EXACT_READ_SETTINGS, _translated

    sql = (
        "SELECT audit_id, stage, toUnixTimestamp64Micro(request_received) AS t, "
        "toDateTime64(stage_time, 6) AS stage_time, batch_id, raw "
        f"FROM `{store.database}`.events WHERE cluster = {{cluster:String}} "
        "ORDER BY request_received, audit_id, stage"
    )
    # FINAL whatever the store's reads: a copy not merged yet must not look like a changed event.
    settings = {**EXACT_READ_SETTINGS, "max_block_size": _BLOCK_ROWS}
    with _translated("cannot read the events"):
        stream = store._client.query_arrow_stream(
            sql, parameters={"cluster": cluster}, settings=settings
        )
        with stream:
            for batch in stream:
                table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
                yield table.set_column(
                    table.schema.get_field_index("stage_time"),
                    "stage_time",
                    _naive_times(table.column("stage_time")),
                ).set_column(
                    table.schema.get_field_index("batch_id"),
                    "batch_id",
                    table.column("batch_id").cast(pa.string()),
                )


def _naive_times(column: Any) -> Any:
    return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
