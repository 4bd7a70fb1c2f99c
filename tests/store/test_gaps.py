"""Gaps: quiet periods longer than a cluster's usual spacing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from kubetrail.pipeline import ingest_paths
from kubetrail.store import DuckDBStore
from kubetrail.store.gaps import find_gaps
from trail import TEMPLATES

T0 = datetime(2026, 5, 1, 8, 0)


def _stream(path: Path, cluster: str, minutes: list[int]) -> Path:
    """One real event (re-timed, fresh auditID) at each of the given minutes after T0."""
    lines = []
    for i, minute in enumerate(minutes):
        event = dict(TEMPLATES[i % len(TEMPLATES)])
        when = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        event.update(auditID=f"{cluster}-{i}", requestReceivedTimestamp=when, stageTimestamp=when)
        lines.append(json.dumps(event))
    file = path / f"{cluster}.jsonl"
    file.write_text("\n".join(lines) + "\n")
    return file


def test_busy_and_quiet_clusters_are_judged_by_their_own_pace(store: DuckDBStore, tmp_path: Path):
    busy = [m for m in range(180) if not 60 <= m < 90]  # every minute, 30 silent minutes
    quiet = list(range(0, 180, 15))  # every 15 minutes, never unusually silent
    ingest_paths(store, [_stream(tmp_path, "busy", busy)], cluster="busy")
    ingest_paths(store, [_stream(tmp_path, "quiet", quiet)], cluster="quiet")
    gaps = find_gaps(store)
    assert [(g.cluster, g.start, g.end) for g in gaps] == [
        ("busy", T0 + timedelta(minutes=60), T0 + timedelta(minutes=90))
    ]
    assert gaps[0].seconds == 30 * 60 and gaps[0].usual_seconds == 60
    assert find_gaps(store, cluster="quiet") == []
    assert find_gaps(store, since=T0 + timedelta(minutes=91)) == []
    # A stream that stopped: open gap until now.
    now = T0 + timedelta(minutes=179 + 60)
    still_open = [g for g in find_gaps(store, now=now) if g.end == now]
    assert [g.cluster for g in still_open] == ["busy"]
    assert still_open[0].start == T0 + timedelta(minutes=180)


def test_stats_lists_the_gaps(db_path: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kubetrail.cli import main
    from kubetrail.store import open_store

    with open_store(db_path) as store:
        busy = [m for m in range(120) if not 30 <= m < 50]
        ingest_paths(store, [_stream(tmp_path, "busy", busy)], cluster="busy")
    result = CliRunner().invoke(main, ["stats", "--db", str(db_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    (gap,) = json.loads(result.output)["gaps"]
    assert gap["cluster"] == "busy" and gap["seconds"] == 20 * 60
    assert gap["start"] == "2026-05-01T08:30:00Z" and gap["end"] == "2026-05-01T08:50:00Z"
    text = CliRunner().invoke(main, ["stats", "--db", str(db_path)])
    assert "gap: busy: no events from 2026-05-01 08:30:00 to 2026-05-01 08:50:00" in text.output
