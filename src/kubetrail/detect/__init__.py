"""Detections: rules as data (YAML), the engine that runs them on batches and on the store,
the built-in rule pack, stored alerts and the sinks that deliver them.

::

    rules.py       YAML -> Rule (validated; errors name file, rule and key)
    loader.py      built-in pack + user directories, overrides and variables -> RuleSet
    patches.py     JSON/merge/strategic-merge patch bodies -> an object rules can inspect
    engine.py      stateless rules over an Arrow batch (one DuckDB query per batch)
    scheduled.py   threshold, first-seen and audit-silence rules against the store
    alertstore.py  the stored alerts (keyed, with cooldown) and their delivery states
    sinks.py       stdout, webhook (HMAC-SHA256), Slack, Alertmanager; retries with backoff
    coverage.py    what audit level and stages a rule needs, against a Policy
    backtest.py    how often each rule would have fired per day
"""

from __future__ import annotations

from kubetrail.detect.alertstore import (
    Delivery,
    StoredAlert,
    get_alert,
    list_alerts,
    record_alert,
    set_status,
)

__all__ = [
    "Delivery",
    "StoredAlert",
    "get_alert",
    "list_alerts",
    "record_alert",
    "set_status",
]
