"""Patch bodies as objects, so that one rule catches a create, an update and a patch alike.

A merge patch and a strategic merge patch already have the object's shape (only the fields
they set), so ``requestObject.spec.containers[*].securityContext.privileged=true`` finds
``privileged: true`` in them as it does in a created Pod. A JSON patch (RFC 6902) is a list of
operations instead: :func:`json_patch_object` turns its ``add`` and ``replace`` operations into
the sparse object they would write. Strategic-merge directives (``$patch``,
``$setElementOrder/...``) are left in place and match nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_WRITES = ("add", "replace")


def json_patch_object(ops: list[Any]) -> dict[str, Any]:
    """The sparse object that the ``add``/``replace`` operations of a JSON patch write.

    ``/spec/containers/0/securityContext/privileged`` with value ``true`` becomes
    ``{"spec": {"containers": [{"securityContext": {"privileged": true}}]}}``. A ``/-`` segment
    appends. Operations that are not objects, or whose path is not a string, are skipped.
    """
    root: dict[str, Any] = {}
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in _WRITES:
            continue
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            continue
        keys = [k.replace("~1", "/").replace("~0", "~") for k in path[1:].split("/")]
        _set(root, keys, op.get("value"))
    return root


def _set(node: Any, keys: list[str], value: Any) -> None:
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        child: Any = value if last else ([] if _is_index(keys[i + 1]) else {})
        if isinstance(node, list):
            if key == "-":
                node.append(child)
            elif key.isdigit():
                at = int(key)
                while len(node) <= at:
                    node.append(None)
                if last or node[at] is None:
                    node[at] = child
                child = node[at]
            else:
                return
        elif isinstance(node, dict):
            if last or not isinstance(node.get(key), dict | list):
                node[key] = child
            child = node[key]
        else:
            return
        node = child


def _is_index(key: str) -> bool:
    return key == "-" or key.isdigit()


def with_patch_objects(table: pa.Table) -> pa.Table:
    """The batch with each JSON-patch body (in ``raw``) replaced by the object it writes.

    Only ``patch`` events are parsed (patches are a small part of audit traffic); the table is
    returned unchanged when the batch has none.
    """
    patches = pc.fill_null(pc.equal(table.column("verb"), "patch"), False)
    if not pc.any(patches).as_py():
        return table
    rows = pc.indices_nonzero(patches)
    texts = table.column("raw").take(rows).to_pylist()
    changed = [False] * len(texts)
    for i, text in enumerate(texts):
        if text is None or "requestObject" not in text:
            continue
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        body = doc.get("requestObject") if isinstance(doc, dict) else None
        if isinstance(body, list):
            doc["requestObject"] = json_patch_object(body)
            texts[i] = json.dumps(doc, separators=(",", ":"))
            changed[i] = True
    if not any(changed):
        return table
    mask = [False] * table.num_rows
    for row in rows.filter(pa.array(changed)).to_pylist():
        mask[row] = True
    new = [t for t, c in zip(texts, changed, strict=True) if c]
    raw = pc.replace_with_mask(
        table.column("raw").combine_chunks(), pa.array(mask), pa.array(new, pa.string())
    )
    return table.set_column(table.schema.get_field_index("raw"), "raw", raw)
