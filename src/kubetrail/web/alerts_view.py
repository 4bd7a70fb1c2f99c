"""The stored alerts of the detections as the UI and ``/api`` show them (a thin layer over
:mod:`kubetrail.detect.alertstore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..detect import alertstore
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
    alerts = alertstore.list_alerts(
        store, since=since, status=status, cluster=cluster, environment=environment, limit=limit
    )
    return [a.to_json() for a in alerts]


def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    """One alert, or ``None``."""
    found = alertstore.get_alert(store, alert_id)
    return None if found is None else found.to_json()


def set_status(store: Store, alert_id: str, status: str, by: str) -> dict[str, Any] | None:
    """Acknowledge, resolve or reopen an alert; ``None`` when it does not exist.

    Raises:
        UsageError: an unknown status.
    """
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}")
    if alertstore.get_alert(store, alert_id) is None:
        return None
    return alertstore.set_status(store, alert_id, status, by).to_json()
