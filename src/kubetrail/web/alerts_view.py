"""The stored alerts of the detections as the UI and ``/api`` show them (a thin layer over
:mod:`kubetrail.detect.routed_alerts`: each cluster's alerts are read from its own store file)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..detect import alertstore, routed_alerts
from ..errors import UsageError
from ..store.base import Store

STATUSES = alertstore.STATUSES


def list_alerts(
    store: Store,
    *,
    since: datetime | None = None,
    status: str | None = None,
    cluster: str | list[str] | None = None,
    environment: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The stored alerts, most recently seen first, as JSON-ready dicts.

    Raises:
        UsageError: an unknown status.
    """
    alerts = routed_alerts.list_alerts(
        store, since=since, status=status, cluster=cluster, environment=environment, limit=limit
    )
    return [a.to_json() for a in alerts]


def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    """One alert, or ``None``."""
    found = routed_alerts.get_alert(store, alert_id)
    return None if found is None else found.to_json()


def set_status(store: Store, alert_id: str, status: str, by: str) -> dict[str, Any] | None:
    """Acknowledge, resolve or reopen an alert; ``None`` when it does not exist.

    Raises:
        UsageError: an unknown status.
    """
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}")
    try:
        return routed_alerts.set_status(store, alert_id, status, by).to_json()
    except KeyError:
        return None
