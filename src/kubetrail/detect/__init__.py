"""Detections: rules as data (YAML), the engine that runs them on batches and on the store,
the built-in rule pack, stored alerts and the sinks that deliver them.

::

    rules.py       YAML -> Rule (validated; errors name file, rule and key)
    loader.py      built-in pack (rules/*.yaml, variables.yaml) + user files, overrides
    patches.py     JSON-patch bodies -> the object they write (merge patches already are)
    engine.py      stateless rules over an Arrow batch (prefilter + one prepared statement)
    scheduled.py   threshold, first-seen and silence rules as queries against the store
    detector.py    matches -> folded by key -> stored -> sinks; the server's detector thread
    alertstore.py  the stored alerts (keyed, with cooldown) and their delivery states
    routed_alerts.py  each cluster's alerts in its own store file; reads merged over files
    sinks.py       stdout, webhook (HMAC-SHA256), Slack, Alertmanager; retries with backoff
    coverage.py    what audit level and stages a rule needs, against a Policy
    replay.py      rules over stored history: ``rules test`` and ``rules backtest``
    service.py     detections inside ``kubetrail serve``
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
