"""Apply a policy decision to an audit Event: what kube-apiserver would have written.

Level controls the bodies (reference a.6): Metadata drops ``requestObject`` and
``responseObject``, Request keeps ``requestObject``, RequestResponse keeps both. Events of an
omitted stage, and every event at level None, are not written. With omitManagedFields,
``metadata.managedFields`` is removed from the request and response objects, and from each item
of lists and Tables; patch bodies are left alone, as upstream.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubetrail.policy.evaluate import Decision, evaluate_event
from kubetrail.policy.model import LEVELS, Policy

# Annotations admission registers with a minimum level of Request (webhook patches).
_REQUEST_LEVEL_ANNOTATIONS = ("patch.webhook.admission.k8s.io/",)


def _strip_managed_fields(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    items = obj.get("items")
    if isinstance(items, list):
        obj = {**obj, "items": [_strip_managed_fields(i) for i in items]}
    rows = obj.get("rows")
    if obj.get("kind") == "Table" and isinstance(rows, list):
        obj = {
            **obj,
            "rows": [
                {**r, "object": _strip_managed_fields(r["object"])}
                if isinstance(r, dict) and "object" in r
                else r
                for r in rows
            ],
        }
    return obj


def apply_decision(event: Mapping[str, Any], decision: Decision) -> dict[str, Any] | None:
    """Return the event as kube-apiserver would write it under ``decision``, or ``None``.

    Args:
        event: a recorded audit Event (not modified).
        decision: the policy decision for its request.

    Returns:
        A new dict with ``level`` set and bodies/managedFields trimmed, or ``None`` when the level
        is None or the event's stage is omitted. A body the event does not carry cannot be
        restored: lowering the level is exact, raising it is not.
    """
    if not decision.keeps(str(event.get("stage", ""))):
        return None
    out = dict(event)
    out["level"] = decision.level
    rank = LEVELS.index(decision.level)
    if rank < LEVELS.index("RequestResponse"):
        out.pop("responseObject", None)
    if rank < LEVELS.index("Request"):
        out.pop("requestObject", None)
        annotations = out.get("annotations")
        if isinstance(annotations, dict):
            out["annotations"] = {
                k: v for k, v in annotations.items() if not k.startswith(_REQUEST_LEVEL_ANNOTATIONS)
            }
            if not out["annotations"]:
                del out["annotations"]
    if decision.omit_managed_fields:
        if "requestObject" in out and str(event.get("verb")) != "patch":
            out["requestObject"] = _strip_managed_fields(copy.deepcopy(out["requestObject"]))
        if "responseObject" in out:
            out["responseObject"] = _strip_managed_fields(copy.deepcopy(out["responseObject"]))
    return out


def apply_level(policy: Policy, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Evaluate ``policy`` on an event's request and apply the decision (collector-side policy).

    Args:
        policy: a validated policy.
        event: a recorded audit Event.

    Returns:
        The trimmed event, or ``None`` when the policy drops it.
    """
    return apply_decision(event, evaluate_event(policy, event))
