"""``kubetrail verify``: recompute the hash chain and every batch's event digest.

For each cluster, :func:`verify_store` checks that

* the chain is whole: sequence numbers 0..n-1 without gaps, each record linked to the previous
  record's hash and carrying the hash of its own fields (a removed, inserted or altered record
  breaks this);
* removal records (retention, eviction) name only batches that the chain recorded before them,
  whose events all lie before the removal's cutoff; given the retention policy, a retention
  record's cutoff is no later than its time minus the cluster's retention, and an eviction
  needs a size cap and takes the oldest batches first (so a forged removal can take no more
  than real retention or eviction would);
* record times never go backwards, nor past now;
* every batch still in the store holds exactly the events its record counted, in its time
  range, with the recorded SHA-256 (an event changed, deleted or added to a batch fails here);
* no stored event belongs to a batch the chain does not know (events inserted outside it);
* removed batches hold no events any more.

The chain proves what the store holds against the store's own records. Someone able to rewrite
the whole file could rebuild a consistent chain: the signed digest files of
:mod:`kubetrail.store.digest`, kept elsewhere, pin the chain's head at each export.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from ..errors import StoreError
from .integrity import (
    GENESIS,
    KIND_BATCH,
    KIND_EVICTION,
    KIND_RETENTION,
    REMOVAL_KINDS,
    ChainRecord,
    chain_time,
    events_digest,
    parse_chain_time,
)

#: Columns a deep check does not re-derive: set from the batch, not from the JSON (``redacted``
#: says whether values were removed from the JSON before storage, which a second pass cannot see).
_NOT_DERIVED = frozenset({"cluster", "source", "batch_id", "raw", "redacted"})


def changed_columns(table: pa.Table) -> list[str]:
    """Extracted columns of stored events that differ from a fresh derivation from their JSON.

    Args:
        table: stored events, every column.

    Returns:
        The names of the columns that differ (empty when all agree).
    """
    from ..model.normalize import normalize_records
    from ..model.schema import COLUMN_NAMES

    if table.num_rows == 0:
        return []
    raw = table.column("raw").to_pylist()
    fresh = normalize_records(
        [(i, (r or "").encode()) for i, r in enumerate(raw)],
        cluster="",
        source="",
        batch_id="",
        redact=False,
    )
    if fresh.rejections or fresh.table.num_rows != table.num_rows:
        return ["raw"]
    return [
        name
        for name in COLUMN_NAMES
        if name not in _NOT_DERIVED
        and not table.column(name).equals(
            fresh.table.column(name).cast(table.schema.field(name).type)
        )
    ]


if TYPE_CHECKING:
    from .retention import RetentionPolicy

#: Clock differences tolerated between records (one writer per store, on one machine).
SKEW = timedelta(minutes=5)


class ChainStore(Protocol):
    """What :func:`verify_store` needs of an engine (``DuckDBStore`` offers it)."""

    def chain_clusters(self) -> list[str]: ...

    def chain_records(self, cluster: str) -> list[ChainRecord]: ...

    def batch_summary(
        self, cluster: str
    ) -> dict[str | None, tuple[int, datetime | None, datetime | None]]: ...

    def batch_events(
        self,
        cluster: str,
        batches: list[tuple[str, int, datetime | None, datetime | None]],
        every_column: bool = False,
    ) -> Iterator[tuple[str, pa.Table]]: ...


@dataclass(frozen=True)
class Problem:
    """One verification failure.

    Attributes:
        cluster: the cluster.
        kind: ``record_missing``, ``record_altered``, ``chain_broken``, ``removal_invalid``,
            ``events_changed``, ``events_removed``, ``events_inserted``,
            ``events_outside_chain``, ``events_after_removal``.
        detail: what was found, in words.
        seq: the chain record concerned, when there is one.
        batch_id: the batch concerned, when there is one.
        first_time: start of the time range concerned.
        last_time: end of the time range concerned.
    """

    cluster: str
    kind: str
    detail: str
    seq: int | None = None
    batch_id: str | None = None
    first_time: datetime | None = None
    last_time: datetime | None = None

    @classmethod
    def at(
        cls, record: ChainRecord, kind: str, detail: str, *, batch_id: str | None = None
    ) -> Problem:
        """A problem found at a chain record: its cluster, sequence number and time range, and
        its batch unless ``batch_id`` names another (e.g. a batch a removal record names)."""
        return cls(
            record.cluster,
            kind,
            detail,
            seq=record.seq,
            batch_id=batch_id if batch_id is not None else record.batch_id,
            first_time=record.first_time,
            last_time=record.last_time,
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "cluster": self.cluster,
            "kind": self.kind,
            "seq": self.seq,
            "batch_id": self.batch_id,
            "first_time": chain_time(self.first_time),
            "last_time": chain_time(self.last_time),
            "detail": self.detail,
        }


@dataclass
class ClusterResult:
    """What was checked for one cluster."""

    records: int = 0
    batches: int = 0
    events: int = 0
    removed_batches: int = 0
    removed_events: int = 0
    head: str = GENESIS
    head_seq: int = -1
    #: ClickHouse: the head (sequence number, hash) of each writer's chain of the cluster.
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_store`; ``ok`` when there is no problem."""

    clusters: dict[str, ClusterResult] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``kubetrail verify --format json``."""
        return {
            "ok": self.ok,
            "clusters": {
                name: {
                    "records": r.records,
                    "batches": r.batches,
                    "events": r.events,
                    "removed_batches": r.removed_batches,
                    "removed_events": r.removed_events,
                    "head_seq": r.head_seq,
                    "head": r.head,
                }
                for name, r in self.clusters.items()
            },
            "problems": [p.as_dict() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }


def verify_store(
    store: ChainStore,
    cluster: str | None = None,
    *,
    policy: RetentionPolicy | None = None,
    now: datetime | None = None,
    deep: bool = False,
) -> VerifyReport:
    """Recompute the chain and the event digests of one cluster or of every cluster.

    Args:
        store: an engine with the chain: the embedded DuckDB store, or a ClickHouse store
            (one chain per cluster and writer: :mod:`kubetrail.store.clickhouse_verify`).
        cluster: only this cluster; default every cluster with a chain or events.
        policy: the configured retention; when given, removal records are checked against it.
        now: the current time (naive UTC), for the check that no record is from the future.
        deep: also re-derive every extracted column (``verb``, ``username``, …) from the stored
            JSON and compare (the hash covers the JSON; this catches an edit of a column alone).
            About 30–40 µs per event more (measured in docs/benchmarks.md).

    Returns:
        The report; ``report.ok`` is false when anything failed.
    """
    if getattr(store, "dialect", None) == "clickhouse":
        from .clickhouse_verify import verify_clickhouse

        if deep:
            raise StoreError("verify --deep is not available on ClickHouse stores yet")
        return verify_clickhouse(store, cluster, policy=policy, now=now)  # type: ignore[arg-type]
    started = time.perf_counter()
    report = VerifyReport()
    names = [cluster] if cluster is not None else store.chain_clusters()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    for name in names:
        result, problems = _verify_cluster(store, name, policy, now, deep)
        report.clusters[name] = result
        report.problems.extend(problems)
    report.seconds = time.perf_counter() - started
    return report


def _verify_cluster(
    store: ChainStore, cluster: str, policy: RetentionPolicy | None, now: datetime, deep: bool
) -> tuple[ClusterResult, list[Problem]]:
    records = store.chain_records(cluster)
    result = ClusterResult(records=len(records))
    problems = check_links(cluster, records, now)
    if records:
        result.head, result.head_seq = records[-1].record_hash, records[-1].seq
    batches: dict[str, ChainRecord] = {}
    removed: dict[str, ChainRecord] = {}
    for record in records:
        if record.kind == KIND_BATCH and record.batch_id is not None:
            batches[record.batch_id] = record
        elif record.kind in REMOVAL_KINDS:
            problems += _check_removal(cluster, record, batches, removed)
            if policy is not None:
                problems += check_policy(cluster, record, policy)
            result.removed_events += record.events
    result.removed_batches = len(removed)
    summary = store.batch_summary(cluster)
    for batch_id, (count, first, last) in summary.items():
        if batch_id not in batches:
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
    to_hash: list[tuple[str, int, datetime | None, datetime | None]] = []
    for batch_id, record in batches.items():
        count = summary.get(batch_id, (0, None, None))[0]
        if batch_id in removed:
            if count:
                problems.append(
                    Problem.at(
                        record,
                        "events_after_removal",
                        f"{count} event(s) remain of a batch that seq {removed[batch_id].seq} "
                        "removed",
                        batch_id=batch_id,
                    )
                )
            continue
        result.batches += 1
        result.events += count
        if count != record.events:
            kind = "events_removed" if count < record.events else "events_inserted"
            problems.append(
                Problem.at(
                    record,
                    kind,
                    f"batch holds {count} event(s), its record says {record.events}",
                    batch_id=batch_id,
                )
            )
            continue
        to_hash.append((batch_id, count, record.first_time, record.last_time))
    for batch_id, table in store.batch_events(cluster, to_hash, deep):
        record = batches[batch_id]
        if deep and (changed := changed_columns(table)):
            problems.append(
                Problem.at(
                    record,
                    "columns_changed",
                    f"column(s) {', '.join(changed)} differ from the event JSON they come from",
                    batch_id=batch_id,
                )
            )
        if events_digest([table]) != record.events_sha256:
            problems.append(
                Problem.at(
                    record,
                    "events_changed",
                    "the events' SHA-256 differs from the record's: an event was changed",
                    batch_id=batch_id,
                )
            )
    return result, problems


def check_links(cluster: str, records: list[ChainRecord], now: datetime) -> list[Problem]:
    """Problems of one chain's sequence, links, record hashes and times."""
    problems: list[Problem] = []
    prev_hash, expected_seq = GENESIS, 0
    prev_at: datetime | None = None
    for record in records:
        where = {
            "seq": record.seq,
            "batch_id": record.batch_id,
            "first_time": record.first_time,
            "last_time": record.last_time,
        }
        if record.seq != expected_seq:
            missing = (
                f"{expected_seq}"
                if record.seq == expected_seq + 1
                else (f"{expected_seq}..{record.seq - 1}")
            )
            problems.append(
                Problem(
                    cluster,
                    "record_missing",
                    f"chain record(s) {missing} missing before this one",
                    **where,
                )
            )
        if record.computed_hash() != record.record_hash:
            problems.append(
                Problem(
                    cluster, "record_altered", "the record's fields do not match its hash", **where
                )
            )
        if record.prev_hash != prev_hash:
            problems.append(
                Problem(
                    cluster,
                    "chain_broken",
                    "the record does not link to the previous record's hash",
                    **where,
                )
            )
        at = record.at
        if at is not None and (at > now + SKEW or (prev_at is not None and at < prev_at - SKEW)):
            problems.append(
                Problem(
                    cluster,
                    "record_time_invalid",
                    f"the record's time {chain_time(at)} is in the future or before the previous "
                    "record's",
                    **where,
                )
            )
        prev_hash, expected_seq = record.record_hash, record.seq + 1
        prev_at = at if at is not None else prev_at
    return problems


def check_policy(cluster: str, record: ChainRecord, policy: RetentionPolicy) -> list[Problem]:
    """Problems of a removal record against the configured retention and size cap."""
    detail = None
    if record.kind == KIND_RETENTION:
        allowed = policy.for_cluster(cluster)
        cutoff = parse_chain_time(record.detail.get("cutoff"))
        if allowed is None:
            detail = "retention removed events of a cluster whose configured retention is forever"
        elif cutoff is None or record.at is None or cutoff > record.at - allowed + SKEW:
            detail = (
                f"retention cutoff {chain_time(cutoff)} is later than the record's time "
                f"{chain_time(record.at)} minus the configured retention"
            )
    elif record.kind == KIND_EVICTION and policy.max_size is None:
        detail = "eviction recorded, but the store has no size cap configured"
    if detail is None:
        return []
    return [
        Problem.at(
            record,
            "removal_invalid",
            detail,
        )
    ]


def _check_removal(
    cluster: str,
    record: ChainRecord,
    batches: dict[str, ChainRecord],
    removed: dict[str, ChainRecord],
) -> list[Problem]:
    problems: list[Problem] = []
    cutoff = parse_chain_time(record.detail.get("cutoff"))
    for batch_id in record.removed_batches():
        batch = batches.get(batch_id)
        if batch is None:
            problem = f"names batch {batch_id!r}, which no earlier record of the chain covers"
        elif batch_id in removed:
            problem = f"removes batch {batch_id!r} a second time"
        elif record.kind == "retention" and (
            cutoff is None or (batch.last_time is not None and batch.last_time >= cutoff)
        ):
            problem = (
                f"removes batch {batch_id!r} (last event {chain_time(batch.last_time)}), "
                f"not older than its cutoff {chain_time(cutoff)}"
            )
        else:
            removed[batch_id] = record
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
        problems += _check_oldest_first(cluster, record, batches, removed)
    return problems


def _check_oldest_first(
    cluster: str,
    record: ChainRecord,
    batches: dict[str, ChainRecord],
    removed: dict[str, ChainRecord],
) -> list[Problem]:
    """An eviction takes the oldest batches first: none it kept may be older than one it took."""
    taken = [batches[b] for b in record.removed_batches() if removed.get(b) is record]
    kept = [b for b in batches.values() if b.batch_id not in removed and b.seq < record.seq]
    if not taken or not kept:
        return []
    newest_taken = max(taken, key=lambda b: (b.last_time or datetime.min, b.seq))
    oldest_kept = min(kept, key=lambda b: (b.last_time or datetime.min, b.seq))
    if (newest_taken.last_time or datetime.min) <= (oldest_kept.last_time or datetime.min):
        return []
    return [
        Problem.at(
            record,
            "removal_invalid",
            f"eviction record took batch {newest_taken.batch_id!r} (last event "
            f"{chain_time(newest_taken.last_time)}) but kept the older batch "
            f"{oldest_kept.batch_id!r}",
            batch_id=newest_taken.batch_id,
        )
    ]
