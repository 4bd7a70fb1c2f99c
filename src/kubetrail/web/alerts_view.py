"""The alerts of the detections (issue 6) as the UI and ``/api`` show them.

Uses ``kubetrail.detect.alertstore`` (``list_alerts``, ``get_alert``, ``set_status``); when
that module is not installed the alerts routes answer 503 and the pages say so.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from types import ModuleType
from typing import Any

from ..errors import UsageError
from ..store.base import Store
from .queries import plain

STATUSES = ("open", "acknowledged", "resolved")


class AlertsUnavailable(Exception):
    """The detections module is not installed."""


def _module() -> ModuleType:
    try:
        from ..detect import alertstore
    except ImportError as exc:
        raise AlertsUnavailable("detections are not installed in this kubetrail") from exc
    return alertstore


def alert_dict(alert: Any) -> dict[str, Any]:
    """An alert as JSON-ready values."""
    raw = dataclasses.asdict(alert) if dataclasses.is_dataclass(alert) else dict(vars(alert))
    return {k: plain(v) for k, v in raw.items()}


def list_alerts(
    store: Store,
    *,
    since: datetime | None = None,
    status: str | None = None,
    cluster: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The stored alerts, newest first.

    Raises:
        AlertsUnavailable: no detections module.
        UsageError: an unknown status.
    """
    if status is not None and status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}")
    alerts = _module().list_alerts(store, since=since, status=status, cluster=cluster, limit=limit)
    return [alert_dict(a) for a in alerts]


def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    """One alert, or ``None``."""
    found = _module().get_alert(store, alert_id)
    return None if found is None else alert_dict(found)


def set_status(store: Store, alert_id: str, status: str, by: str) -> dict[str, Any] | None:
    """Acknowledge or resolve (or reopen) an alert; ``None`` when it does not exist.

    Raises:
        UsageError: an unknown status.
    """
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}")
    module = _module()
    if module.get_alert(store, alert_id) is None:
        return None
    module.set_status(store, alert_id, status, by)
    return get_alert(store, alert_id)
