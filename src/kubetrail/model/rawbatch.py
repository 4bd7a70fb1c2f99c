"""The fast path's batch: decoded events as their raw JSON plus the few columns Python keeps.

The reference path (:mod:`.normalize`) builds every column in Python from the decoded heads.
On the fast path the engine extracts the event's fields from the raw JSON itself
(:mod:`kubetrail.store.duckdb_raw`), so Python hands over only what it already holds cheaply
or what must follow Python's exact rules:

* ``audit_id`` and ``stage``: the dedupe key (and the hash chain's sort key), as decoded;
* ``request_received`` and ``stage_time``: parsed by the same Arrow code as the reference
  path (v1beta1's ``timestamp`` fallback, nanosecond truncation, offsets, bad times);
* ``event_version``: the event's apiVersion (EventList items without one take the list's);
* ``command``: the exec/attach command (URL decoding and shell quoting, rare rows only);
* ``redacted`` and ``raw``: the event's JSON after redaction.

Decoding, validation, redaction and every rejection are the reference path's own
(:func:`~kubetrail.model.decode.decode_records`): only the column building moves.
"""

from __future__ import annotations

import pyarrow as pa

from .decode import DecodedChunk, Rejection, decode_records
from .derive import exec_command
from .gcpause import gc_paused
from .normalize import Record, bad_rejections, checked_columns, without_bad
from .schema import EVENT_SCHEMA

_EXEC_SUBRESOURCES = frozenset({"exec", "attach"})

#: The columns of a fast-path batch, typed as in :data:`~kubetrail.model.schema.EVENT_SCHEMA`.
RAW_SCHEMA: pa.Schema = pa.schema(
    [
        EVENT_SCHEMA.field(name)
        for name in (
            "audit_id",
            "stage",
            "request_received",
            "stage_time",
            "event_version",
            "command",
            "redacted",
            "raw",
        )
    ]
)


def raw_batch(records: list[Record], *, source: str, redact: bool = True) -> RawBatch:
    """Decode, check and redact records like the reference path; keep the raw-batch columns.

    Args:
        records: ``(line_number, bytes)`` pairs.
        source: where the records came from (for rejections).
        redact: remove Secret values before anything else sees them. Default ``True``.
    """
    with gc_paused():
        chunk = decode_records(records, source, redact=redact)
        return raw_columns(chunk)


class RawBatch:
    """A fast-path batch: the table (:data:`RAW_SCHEMA`), the rejections, the records read."""

    __slots__ = ("records", "rejections", "table")

    def __init__(self, table: pa.Table, rejections: list[Rejection], records: int) -> None:
        self.table = table
        self.rejections = rejections
        self.records = records


def raw_columns(chunk: DecodedChunk) -> RawBatch:
    """The raw-batch table of decoded events (see the module docstring)."""
    heads = chunk.heads
    received, stage_time, raw, bad = checked_columns(chunk)
    commands: list[str | None] = [None] * len(heads)
    for i, head in enumerate(heads):
        ref = head.objectRef
        if ref is not None and ref.subresource in _EXEC_SUBRESOURCES:
            commands[i] = exec_command(head.requestURI or "")
    table = pa.Table.from_arrays(
        [
            pa.array([h.auditID for h in heads], pa.string()),
            pa.array([h.stage for h in heads], pa.string()),
            received,
            stage_time,
            pa.array([h.apiVersion or "audit.k8s.io/v1" for h in heads], pa.string()),
            pa.array(commands, pa.string()),
            pa.array(chunk.redacted, pa.bool_()),
            raw,
        ],
        schema=RAW_SCHEMA,
    )
    rejections = chunk.rejections + bad_rejections(chunk, bad)
    return RawBatch(without_bad(table, bad), rejections, chunk.records)
