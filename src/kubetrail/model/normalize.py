"""Turning a decoded chunk into one Arrow table with the columns of :mod:`.schema`.

The work is column by column: one list comprehension per field, then Arrow kernels for what
can be vectorised (timestamp parsing, latency). Building Arrow row by row and allocating a
Python object per cell are the slow parts of ingest, so neither happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .decode import DecodedChunk, Rejection
from .derive import actor_kind, exec_command, is_final, service_account
from .event import EventHead
from .schema import EVENT_SCHEMA

_DECISION = "authorization.k8s.io/decision"
_REASON = "authorization.k8s.io/reason"
_TS_NS_UTC = pa.timestamp("ns", tz="UTC")
_TS_NS = pa.timestamp("ns")
_TS = pa.timestamp("us")


@dataclass
class NormalizedBatch:
    """The Arrow table of a chunk's storable events, and the events refused while building it."""

    table: pa.Table
    rejections: list[Rejection]


def normalize(chunk: DecodedChunk, *, cluster: str, source: str, batch_id: str) -> NormalizedBatch:
    """Build the Arrow table of a decoded chunk.

    Args:
        chunk: events decoded by :func:`kubetrail.model.decode.decode_records`.
        cluster: the cluster every event belongs to.
        source: where the events came from (stored in the ``source`` column).
        batch_id: the ingest batch id (stored in the ``batch_id`` column).

    Returns:
        The table (schema :data:`~kubetrail.model.schema.EVENT_SCHEMA`) and the events refused
        because a timestamp could not be parsed.
    """
    heads = chunk.heads
    received, stage_time, bad = _timestamps(heads)
    rejections: list[Rejection] = []
    if bad:
        for i in sorted(bad):
            line, index = chunk.positions[i]
            rejections.append(
                Rejection(chunk.source, line, index, "invalid timestamp", bad[i], chunk.raws[i])
            )
        keep = [i for i in range(len(heads)) if i not in bad]
        indices = pa.array(keep, pa.int64())
        return NormalizedBatch(
            _build(
                [heads[i] for i in keep],
                [chunk.raws[i] for i in keep],
                [chunk.redacted[i] for i in keep],
                received.take(indices),
                stage_time.take(indices),
                cluster,
                source,
                batch_id,
            ),
            rejections,
        )
    table = _build(
        heads, chunk.raws, chunk.redacted, received, stage_time, cluster, source, batch_id
    )
    return NormalizedBatch(table, rejections)


def _build(
    heads: Sequence[EventHead],
    raws: Sequence[bytes],
    redacted: Sequence[bool],
    received: pa.Array,
    stage_time: pa.Array,
    cluster: str,
    source: str,
    batch_id: str,
) -> pa.Table:
    n = len(heads)
    users = [h.user for h in heads]
    usernames = [u.username if u is not None else None for u in users]
    refs = [h.objectRef for h in heads]
    statuses = [h.responseStatus for h in heads]
    codes = [s.code if s is not None else None for s in statuses]
    annotations = [h.annotations for h in heads]
    stages = [h.stage for h in heads]
    uris = [h.requestURI for h in heads]
    sa = [service_account(u) for u in usernames]
    impersonated = [h.impersonatedUser for h in heads]

    def ref_field(name: str) -> list[str | None]:
        return [getattr(r, name) or None if r is not None else None for r in refs]

    subresources = ref_field("subresource")
    columns: dict[str, Any] = {
        "cluster": pa.repeat(cluster, n) if n else pa.array([], pa.string()),
        "audit_id": [h.auditID for h in heads],
        "stage": stages,
        "is_final": [is_final(s, c, u) for s, c, u in zip(stages, codes, usernames, strict=True)],
        "level": [h.level for h in heads],
        "verb": [h.verb for h in heads],
        "request_uri": uris,
        "username": [u or None for u in usernames],
        "user_uid": [u.uid or None if u is not None else None for u in users],
        "user_groups": [u.groups or None if u is not None else None for u in users],
        "actor_kind": [actor_kind(u) for u in usernames],
        "sa_namespace": [s[0] for s in sa],
        "sa_name": [s[1] for s in sa],
        "impersonated_user": [u.username or None if u is not None else None for u in impersonated],
        "impersonated_groups": [u.groups or None if u is not None else None for u in impersonated],
        "source_ips": [h.sourceIPs or None for h in heads],
        "user_agent": [h.userAgent or None for h in heads],
        "api_group": ref_field("apiGroup"),
        "api_version": ref_field("apiVersion"),
        "resource": ref_field("resource"),
        "subresource": subresources,
        "namespace": ref_field("namespace"),
        "name": ref_field("name"),
        "response_code": codes,
        "response_reason": [s.reason or None if s is not None else None for s in statuses],
        "decision": _annotation(annotations, _DECISION),
        "decision_reason": _annotation(annotations, _REASON),
        "request_received": received,
        "stage_time": stage_time,
        "latency_ms": _latency_ms(received, stage_time),
        "command": [
            exec_command(uri) if sub in ("exec", "attach") else None
            for uri, sub in zip(uris, subresources, strict=True)
        ],
        "redacted": list(redacted),
        "event_version": [h.apiVersion or "audit.k8s.io/v1" for h in heads],
        "source": pa.repeat(source, n) if n else pa.array([], pa.string()),
        "batch_id": pa.repeat(batch_id, n) if n else pa.array([], pa.string()),
        "raw": pa.array(raws, pa.binary()).cast(pa.string()),
    }
    arrays = [_as_array(columns[f.name], f.type) for f in EVENT_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def _as_array(values: Any, type_: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(values, type_)


def _annotation(annotations: Sequence[dict[str, str] | None], key: str) -> list[str | None]:
    # An empty reason is meaningful ("allowed, no reason given"), so keep "" here.
    return [a.get(key) if a else None for a in annotations]


def _timestamps(heads: Sequence[EventHead]) -> tuple[pa.Array, pa.Array, dict[int, str]]:
    """Parse request and stage timestamps; v1beta1's ``timestamp`` fills either when absent."""
    received_text = [h.requestReceivedTimestamp or h.timestamp or h.stageTimestamp for h in heads]
    stage_text = [h.stageTimestamp or h.timestamp or h.requestReceivedTimestamp for h in heads]
    bad: dict[int, str] = {}
    received = _parse(received_text, "requestReceivedTimestamp", bad)
    stage = _parse(stage_text, "stageTimestamp", bad)
    return received, stage, bad


def _parse(texts: list[str | None], name: str, bad: dict[int, str]) -> pa.Array:
    """Parse RFC 3339 times (up to nanoseconds, any offset) to naive UTC microseconds.

    Times without an offset (``2024-11-13 18:34:10.595141000``, as some log pipelines rewrite
    them) are taken as UTC.
    """
    array = pa.array(texts, pa.string())
    try:
        return array.cast(_TS_NS_UTC).cast(_TS, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Rare: parse value by value, keep nulls in the place of the bad ones.
    parsed: list[Any] = []
    for i, text in enumerate(texts):
        value = _parse_one(text)
        if value is None and text is not None:
            bad.setdefault(i, f"{name} {text!r} is not an RFC 3339 time")
        parsed.append(value)
    return pa.array(parsed, _TS_NS).cast(_TS, safe=False)


def _parse_one(text: str | None) -> Any:
    if text is None:
        return None
    scalar = pa.scalar(text, pa.string())
    for target in (_TS_NS_UTC, _TS_NS):
        try:
            return scalar.cast(target).cast(_TS_NS).value
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _latency_ms(received: pa.Array, stage_time: pa.Array) -> pa.Array:
    micros = pc.subtract(stage_time.cast(pa.int64()), received.cast(pa.int64()))
    return pc.divide(micros.cast(pa.float64()), 1000.0)
