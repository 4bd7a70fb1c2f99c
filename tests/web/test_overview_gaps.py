"""The overview's "Gaps in the audit stream" panel (issue 9): which silences it lists."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubetrail.demo import generate_events
from kubetrail.pipeline import ingest_paths
from kubetrail.store import DuckDBStore, open_store
from kubetrail.web.queries import TimeRange
from kubetrail.web.scope import ReadScope
from kubetrail.web.stream_gaps import scope_gaps


def _gaps(store, clusters, window):
    return scope_gaps(store, ReadScope(store, clusters), window).silences


END = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(minutes=30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    """Two clusters that went quiet for two hours, then came back (30 minutes each side)."""
    path = tmp_path / "gaps.jsonl"
    quiet_then_back = [
        *generate_events(300, seed=1, end=END - timedelta(hours=3), span=SPAN),
        *generate_events(300, seed=2, end=END, span=SPAN),
    ]
    path.write_bytes(b"\n".join(quiet_then_back) + b"\n")
    with open_store(":memory:") as opened:
        ingest_paths(opened, [str(path)], "prod")
        ingest_paths(opened, [str(path)], "dev")
        yield opened


def test_lists_the_silence_and_one_still_open(store: DuckDBStore) -> None:
    naive_end = END.replace(tzinfo=None)
    window = TimeRange(naive_end - timedelta(hours=6), naive_end + timedelta(hours=1), "custom")
    gaps = _gaps(store, "prod", window)
    closed = [g for g in gaps if g.end < window.end]
    assert len(closed) == 1 and closed[0].seconds > 2 * 3600
    assert [g.end for g in gaps if g not in closed] == [window.end]  # quiet since the last event
    assert {g.cluster for g in _gaps(store, ["prod", "dev"], window)} == {"prod", "dev"}
    assert {g.cluster for g in _gaps(store, ["dev"], window)} == {"dev"}


def test_nothing_when_the_stream_kept_its_pace(store: DuckDBStore) -> None:
    naive_end = END.replace(tzinfo=None)
    window = TimeRange(naive_end - SPAN, naive_end, "custom")
    assert _gaps(store, None, window) == []
