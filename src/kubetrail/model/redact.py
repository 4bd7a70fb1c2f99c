"""Removal of secret values from an event before it is stored.

What is removed (the keys stay, each value becomes :data:`REDACTED`):

* ``data`` and ``stringData`` of every Secret in ``requestObject`` and ``responseObject``: a
  Secret object, the items of a SecretList (or of any list answered for ``secrets``), Secrets
  nested in other objects (a ``List``, a ``Table`` row), and the body of any request on the
  ``secrets`` resource (merge and strategic-merge patches carry ``data`` at the top);
* JSON-patch operations on a Secret whose path is under ``/data`` or ``/stringData``;
* the ``kubectl.kubernetes.io/last-applied-configuration`` annotation of a Secret, which holds
  the whole Secret as JSON: its own ``data``/``stringData`` are redacted inside it;
* the bearer tokens of ``TokenReview`` (``spec.token``, ``status.token`` is never set) and of
  ``TokenRequest`` answers (``status.token``): credentials just like a Secret's values.
"""

from __future__ import annotations

import json
from typing import Any

REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_FIELDS = ("data", "stringData")
_BODIES = ("requestObject", "responseObject")


_NO_BODIES = frozenset({"Metadata", "None"})


def might_need_redaction(line: bytes, level: str | None = None) -> bool:
    """Cheap test: can this raw event hold a value that :func:`redact_event` removes?

    Events at level Metadata carry no request or response body, so nothing to look for.
    """
    if level in _NO_BODIES:
        return False
    return b"ecret" in line or b"Token" in line


def redact_event(event: dict[str, Any]) -> bool:
    """Redact secret values in ``event`` in place.

    Returns:
        ``True`` when anything was removed.
    """
    ref = event.get("objectRef")
    on_secrets = isinstance(ref, dict) and ref.get("resource") == "secrets"
    changed = False
    for key in _BODIES:
        body = event.get(key)
        if body is None:
            continue
        if on_secrets:
            changed |= _redact_secret_body(body)
        changed |= _redact_nested(body)
    return changed


def _redact_secret_body(body: Any) -> bool:
    """A body of a request on ``secrets``: a Secret, a list of them, or a patch."""
    if isinstance(body, list):
        return _redact_json_patch(body)
    if not isinstance(body, dict):
        return False
    changed = _redact_secret(body)
    items = body.get("items")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                changed |= _redact_secret(item)
    return changed


def _redact_nested(node: Any) -> bool:
    """Find Secrets and token-bearing objects anywhere inside ``node``."""
    changed = False
    if isinstance(node, dict):
        kind = node.get("kind")
        if kind == "Secret":
            changed |= _redact_secret(node)
        elif kind == "TokenReview":
            changed |= _blank(node.get("spec"), "token")
        elif kind == "TokenRequest":
            changed |= _blank(node.get("status"), "token")
        for value in node.values():
            if isinstance(value, dict | list):
                changed |= _redact_nested(value)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, dict | list):
                changed |= _redact_nested(value)
    return changed


def _redact_secret(obj: dict[str, Any]) -> bool:
    changed = False
    for field in _SECRET_FIELDS:
        values = obj.get(field)
        if isinstance(values, dict):
            for key, value in values.items():
                if value != REDACTED:
                    values[key] = REDACTED
                    changed = True
        elif values is not None and values != REDACTED:
            obj[field] = REDACTED
            changed = True
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            changed |= _redact_last_applied(annotations)
    return changed


def _redact_last_applied(annotations: dict[str, Any]) -> bool:
    text = annotations[LAST_APPLIED]
    try:
        applied = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        applied = None
    if not isinstance(applied, dict):
        # Unreadable: it may still hold the secret, so drop the whole value.
        if text == REDACTED:
            return False
        annotations[LAST_APPLIED] = REDACTED
        return True
    if not _redact_secret(applied):
        return False
    annotations[LAST_APPLIED] = json.dumps(applied, separators=(",", ":"), ensure_ascii=False)
    return True


def _redact_json_patch(ops: list[Any]) -> bool:
    changed = False
    for op in ops:
        if not isinstance(op, dict) or "value" not in op:
            continue
        path = op.get("path")
        if not isinstance(path, str):
            continue
        top = path.split("/")[1] if path.startswith("/") and path.count("/") >= 1 else ""
        if top in _SECRET_FIELDS:
            if isinstance(op["value"], dict):
                for key in op["value"]:
                    op["value"][key] = REDACTED
            else:
                op["value"] = REDACTED
            changed = True
        elif path.endswith("/" + LAST_APPLIED.replace("/", "~1")):
            holder = {LAST_APPLIED: op["value"]}
            if _redact_last_applied(holder):
                op["value"] = holder[LAST_APPLIED]
                changed = True
        elif (
            path == "/metadata/annotations"
            and isinstance(op["value"], dict)
            and LAST_APPLIED in op["value"]
        ):
            changed |= _redact_last_applied(op["value"])
    return changed


def _blank(obj: Any, key: str) -> bool:
    if isinstance(obj, dict) and obj.get(key) not in (None, "", REDACTED):
        obj[key] = REDACTED
        return True
    return False
