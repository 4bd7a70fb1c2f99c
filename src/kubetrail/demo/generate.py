"""The demo-cluster audit log generator: public entry points and the scenario mix.

Time is laid out by event count: the ``k``-th event of ``n`` is due around
``start + span * k / n``, so exactly ``n`` events cover the span evenly whatever the mix. At each
step one scenario is drawn (people and CI mostly in working hours, machines all day), it queues
its requests' stages on the emitter's heap, and every line whose stage time has passed is
written out. Same arguments, same bytes: the only randomness is ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from heapq import heappop
from itertools import accumulate
from typing import BinaryIO

from kubetrail.demo import people, system, watches, workloads
from kubetrail.demo.emitter import Emitter

#: The default end of the log: fixed, so that a seed always gives the same bytes.
DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_SPAN = timedelta(hours=24)

Scenario = Callable[[Emitter, int], None]

#: (scenario, weight in working hours, weight at night). Weights count scenario draws; a
#: draw queues one request (a lease renewal) or dozens (a rollout).
MIX: tuple[tuple[Scenario, float, float], ...] = (
    (system.node_lease, 34.0, 34.0),
    (system.leader_election, 18.0, 18.0),
    (system.apiserver_lease, 3.0, 3.0),
    (watches.watch, 14.0, 14.0),
    (system.discovery, 2.0, 2.0),
    (system.controller_reads, 4.0, 4.0),
    (system.controller_writes, 8.0, 8.0),
    (system.kubelet_status, 2.5, 2.5),
    (system.denied_operator, 2.4, 2.4),
    (people.human_session, 1.3, 0.12),
    (workloads.rollout, 0.12, 0.02),
    (workloads.preview_namespace, 0.05, 0.01),
    (workloads.rbac_change, 0.05, 0.005),
    (people.stranger, 0.2, 0.2),
)
_WORK_HOURS = range(7, 19)
_HOUR_US = 3_600_000_000


def _tables() -> list[list[float]]:
    day = list(accumulate(w for _, w, _ in MIX))
    night = list(accumulate(w for _, _, w in MIX))
    return [day if h in _WORK_HOURS else night for h in range(24)]


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def generate_lines(
    n: int, seed: int = 1, end: datetime | None = None, span: timedelta = DEFAULT_SPAN
) -> Iterator[str]:
    """Yield ``n`` serialized audit events (str, no newline) in stage-time order.

    Args:
        n: number of events (> 0).
        seed: seed of the only random generator used.
        end: time of the last possible event (default :data:`DEFAULT_END`); naive means UTC.
        span: time the log covers, ending at ``end`` (default 24 h).

    Returns:
        An iterator of compact JSON lines, each an ``audit.k8s.io/v1`` Event.

    Raises:
        ValueError: ``n`` is not positive or ``span`` is not positive.
    """
    if n <= 0:
        raise ValueError(f"number of events must be positive, got {n}")
    span_us = int(span / timedelta(microseconds=1))
    if span_us <= 0:
        raise ValueError(f"span must be positive, got {span}")
    end_us = _epoch_us(end or DEFAULT_END)
    start_us = end_us - span_us
    rng = random.Random(seed)
    em = Emitter(rng, n, start_us, end_us)
    return _run(em, n, start_us, span_us)


def _run(em: Emitter, n: int, start_us: int, span_us: int) -> Iterator[str]:
    tables = _tables()
    scenarios = [s for s, _, _ in MIX]
    heap = em.heap
    r = em.random
    step = span_us // n
    while em.count < n:
        t = start_us + span_us * em.count // n + int(r() * step)
        while heap and heap[0][0] <= t:
            yield heappop(heap)[2]
        if n - em.count == 1:
            people.stranger(em, t)
            continue
        cum = tables[(t // _HOUR_US) % 24]
        before = em.count
        scenarios[bisect(cum, r() * cum[-1])](em, t)
        if em.count == before:
            system.node_lease(em, t)
    while heap:
        yield heappop(heap)[2]


def generate_events(
    n: int, seed: int = 1, end: datetime | None = None, span: timedelta = DEFAULT_SPAN
) -> Iterator[bytes]:
    """Yield ``n`` audit events of the demo cluster as UTF-8 JSON lines (without newline).

    Args:
        n: number of events (> 0).
        seed: seed of the only random generator used (default 1).
        end: time of the last possible event (default 2026-01-01T00:00:00Z); naive means UTC.
        span: time the log covers, ending at ``end`` (default 24 h).

    Returns:
        An iterator of ``bytes``, one ``audit.k8s.io/v1`` Event each, sorted by stage time.
    """
    for line in generate_lines(n, seed, end, span):
        yield line.encode()


def write_events(
    stream: BinaryIO,
    n: int,
    seed: int = 1,
    end: datetime | None = None,
    span: timedelta = DEFAULT_SPAN,
    chunk: int = 4096,
) -> int:
    """Write ``n`` events as JSON Lines to a binary stream, in large chunks.

    Args:
        stream: a binary file object (``sys.stdout.buffer``, an open file).
        n: number of events (> 0).
        seed: seed of the generator (default 1).
        end: time of the last possible event (default 2026-01-01T00:00:00Z).
        span: time the log covers (default 24 h).
        chunk: lines joined per write (default 4096).

    Returns:
        The number of bytes written.
    """
    written = 0
    buf: list[str] = []
    for line in generate_lines(n, seed, end, span):
        buf.append(line)
        if len(buf) >= chunk:
            buf.append("")
            data = "\n".join(buf).encode()
            stream.write(data)
            written += len(data)
            buf.clear()
    if buf:
        buf.append("")
        data = "\n".join(buf).encode()
        stream.write(data)
        written += len(data)
    return written
