"""Gaps of the selected clusters' streams for the overview (UI and ``/api/overview``), and
the reads that must look in every store file (an event by auditID).

Two kinds of gap (issue 9): a silence (no events for much longer than the cluster's usual
pace, :mod:`kubetrail.store.gaps`, looked for in each store file that holds a selected
cluster) and events the API server itself counted as failed to send (its scraped
``apiserver_audit_error_total``, :mod:`kubetrail.store.audit_counters`, kept next to the
cluster's alerts: in its own store file when it has one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError
from ..store.audit_counters import AuditErrorGap, audit_error_gaps
from ..store.base import Store
from ..store.gaps import Gap, find_gaps
from .queries import TimeRange
from .scope import ReadScope, event_stores
from .ui_data import EventView, event_view


@dataclass
class StreamGaps:
    """The gaps of a scope: silences and API-server audit errors."""

    silences: list[Gap] = field(default_factory=list)
    audit_errors: list[AuditErrorGap] = field(default_factory=list)

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready dicts, each with its ``kind`` (``silence`` or ``audit_errors``)."""
        out = [{"kind": "silence", **g.as_dict()} for g in self.silences]
        return out + [g.as_dict() for g in self.audit_errors]


def scope_gaps(store: Store, scope: ReadScope, window: TimeRange) -> StreamGaps:
    """Gaps of the scope's clusters in the range; a silence still open at its end ends there.

    ``store`` is the server's store (every file); "all clusters" looks for silences in every
    file, since finding them costs one small group-by per file.
    """
    end = window.end or window.now
    stores = event_stores(store) if scope.clusters is None else [scope.store]
    one = scope.clusters if isinstance(scope.clusters, str) else None
    silences: list[Gap] = []
    for s in stores:
        silences += find_gaps(s, one, window.start, now=end)
    if isinstance(scope.clusters, list):
        silences = [g for g in silences if g.cluster in scope.clusters]
    silences = sorted(
        (g for g in silences if end is None or g.end <= end), key=lambda g: (g.cluster, g.start)
    )
    try:
        errors = audit_error_gaps(store, scope.clusters, window.start, end)
    except StoreError:  # a read-only store without the samples table
        errors = []
    return StreamGaps(silences, errors)


def find_event(store: Store, audit_id: str) -> EventView | None:
    """The event page's data from whichever store file holds the auditID."""
    for s in event_stores(store):
        view = event_view(s, audit_id)
        if view is not None:
            return view
    return None
