"""The live detector: stateless rules on every committed batch, scheduled rules on a timer.

Matches are folded by (rule, cluster, key) in memory, stored (:func:`record_many`) and only
then handed to the sinks: an unreachable sink never loses an alert. In the server a
:class:`DetectorThread` takes the committed batches off the writer, joining whatever is
queued into one table so that the per-query cost is paid once under load.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from ..store.base import Store
from .alertstore import NewMatch, StoredAlert
from .audit_errors import audit_error_matches
from .engine import BatchEngine, Match
from .routed_alerts import record_many
from .rules import Rule
from .scheduled import first_seen_matches, silence_matches, threshold_matches

log = logging.getLogger("kubetrail.detect")

#: How long after its last match an open alert of a stateless rule absorbs new matches.
DEFAULT_COOLDOWN = timedelta(hours=1)


def fold(
    matches: Iterable[Match],
    cooldown: timedelta = DEFAULT_COOLDOWN,
    environments: Mapping[str, str] | None = None,
) -> list[NewMatch]:
    """Fold matches by (rule, cluster, key): one item per key, or more when the matches of a
    key are further apart than ``cooldown``. ``environments`` (cluster -> environment label)
    gives each item its cluster's environment."""
    envs = environments or {}
    items: list[NewMatch] = []
    open_: dict[tuple[str, str, str], int] = {}
    for m in sorted(matches, key=lambda m: (m.time, m.rule.id)):
        k = (m.rule.id, m.cluster, m.key)
        at = open_.get(k)
        if at is not None and items[at].last >= m.time - cooldown:
            cur = items[at]
            items[at] = NewMatch(
                cur.rule,
                cur.title,
                cur.severity,
                cur.tags,
                cur.cluster,
                cur.key,
                cur.message,
                cur.first,
                m.time,
                (*cur.audit_ids, *m.audit_ids),
                cur.count + m.count,
                cur.cooldown,
                cur.fold,
                cur.environment,
            )
            continue
        open_[k] = len(items)
        items.append(_item(m, cooldown, envs.get(m.cluster, "")))
    return items


def _item(m: Match, cooldown: timedelta, environment: str = "") -> NewMatch:
    r = m.rule
    if r.threshold is not None:
        cooldown = r.threshold.window
    elif r.first_seen is not None:
        cooldown = r.first_seen.learn
    elif r.silence is not None:
        cooldown = timedelta(days=3650)  # one alert per silence; resolve it to be told again
    elif r.audit_errors is not None:
        cooldown = timedelta(hours=1)  # a backend failing scrape after scrape: one alert
    return NewMatch(
        r.id,
        r.title,
        r.severity,
        r.tags,
        m.cluster,
        m.key,
        m.message,
        m.time,
        m.time,
        m.audit_ids,
        m.count,
        cooldown,
        "add" if r.stateless or r.audit_errors is not None else "max",
        environment,
    )


class Detector:
    """Runs a rule set against batches and the store; stores alerts; hands new ones on.

    Args:
        store: the server's store; each alert goes to its cluster's store file
            (:mod:`kubetrail.detect.routed_alerts`).
        rules: the rules (disabled ones are skipped).
        notify: called with the alerts raised now (the sink dispatcher), after they are stored.
        cooldown: the stateless rules' cooldown.
        environments: each cluster's environment label, recorded with its alerts.
        event_stores: every store that holds events, for the scheduled rules (default
            ``[store]``); a server whose clusters write to files of their own passes each file,
            so threshold, first-seen and silence rules see every cluster.
    """

    def __init__(
        self,
        store: Store,
        rules: Sequence[Rule],
        *,
        notify: Callable[[list[StoredAlert]], None] | None = None,
        cooldown: timedelta = DEFAULT_COOLDOWN,
        environments: Mapping[str, str] | None = None,
        event_stores: Sequence[Store] | None = None,
    ) -> None:
        self.store = store
        self.rules = [r for r in rules if r.enabled]
        self.engine = BatchEngine(self.rules)
        self.notify = notify
        self.cooldown = cooldown
        self.environments = dict(environments or {})
        self.event_stores = list(event_stores) if event_stores else [store]
        self._last_run: dict[str, datetime] = {}

    def on_batch(self, table: pa.Table) -> list[StoredAlert]:
        """Run the stateless rules on a batch; store and announce what they raise."""
        return self.record(self.engine.scan(table))

    def record(self, matches: Iterable[Match]) -> list[StoredAlert]:
        """Store matches (folded by key); announce the alerts raised now."""
        new = record_many(self.store, fold(matches, self.cooldown, self.environments))
        if new and self.notify is not None:
            self.notify(new)
        return new

    def run_scheduled(self, now: datetime | None = None) -> list[StoredAlert]:
        """Run threshold, first-seen and silence rules as of ``now`` (naive UTC)."""
        now = now or datetime.now(UTC).replace(tzinfo=None)
        matches: list[Match] = []
        for rule in self.rules:
            try:
                if rule.audit_errors is not None:  # scraped counters, kept with the alerts
                    since = self._last_run.get(rule.id, now - timedelta(minutes=10))
                    found, newest = audit_error_matches(self.store, rule, since, now)
                    matches += found
                    self._last_run[rule.id] = newest
                    continue
                for store in self.event_stores:  # a cluster's events live in one store
                    matches += self._scheduled(store, rule, now)
            except Exception as exc:  # one bad rule must not stop the others
                log.error("scheduled rule %s failed: %s", rule.id, exc)
                continue
            self._last_run[rule.id] = now
        return self.record(matches)

    def _scheduled(self, store: Store, rule: Rule, now: datetime) -> list[Match]:
        if rule.threshold is not None:
            return threshold_matches(store, rule, now - rule.threshold.window, now)
        if rule.first_seen is not None:
            start = self._last_run.get(rule.id, now - timedelta(minutes=5))
            return first_seen_matches(store, rule, start, now)
        if rule.silence is not None:
            return silence_matches(store, rule, now)
        return []

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()


class DetectorThread:
    """Runs a :class:`Detector` beside the server's writer.

    Args:
        detector: the detector.
        interval: seconds between runs of the scheduled rules.
    """

    def __init__(self, detector: Detector, interval: float = 30.0) -> None:
        self.detector = detector
        self.interval = interval
        self.failures = 0
        self._queue: queue.SimpleQueue[pa.Table | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kubetrail-detect", daemon=True)
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, tables: Sequence[pa.Table]) -> None:
        """Queue committed batches for the stateless rules."""
        for table in tables:
            if table.num_rows:
                self._queue.put(table)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop."""
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        next_scheduled = time.monotonic() + min(self.interval, 5.0)
        while True:
            wait = max(0.0, next_scheduled - time.monotonic())
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                first = None
                if self._stop.is_set():
                    return
            stopping = first is None and self._stop.is_set()
            tables = [] if first is None else [first]
            while not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    stopping = True
                else:
                    tables.append(more)
            if tables:
                self._guard(self.detector.on_batch, pa.concat_tables(tables))
            if time.monotonic() >= next_scheduled:
                self._guard(self.detector.run_scheduled)
                next_scheduled = time.monotonic() + self.interval
            if stopping:
                return

    def _guard(self, work: Callable[..., object], *args: object) -> None:
        try:
            work(*args)
        except Exception as exc:  # the server keeps ingesting whatever detection does
            self.failures += 1
            log.error("detection failed: %s", exc)
