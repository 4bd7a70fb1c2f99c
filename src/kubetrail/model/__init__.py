"""The audit Event: decoding, validation, redaction and normalisation to Arrow columns.

This package knows nothing of storage or HTTP. Entry points:

* :func:`decode_records` turns raw records into events and rejections;
* :func:`normalize` turns decoded events into one Arrow table of :data:`EVENT_SCHEMA`;
* :func:`load_events` reads a file's valid events as plain dicts (for tools and tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from .decode import DecodedChunk, Rejection, decode_records
from .normalize import NormalizedBatch, normalize
from .schema import COLUMN_NAMES, COLUMNS, EVENT_SCHEMA

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "EVENT_SCHEMA",
    "DecodedChunk",
    "NormalizedBatch",
    "Rejection",
    "decode_records",
    "load_events",
    "normalize",
]


def load_events(path: str | Path, *, redact: bool = True) -> Iterator[dict[str, Any]]:
    """Yield the valid events of a file (JSON lines, EventList, ``.gz``, ``-``) as dicts.

    Rejected records are skipped silently; use :func:`decode_records` to see them. EventList
    items come out one by one, with ``kind`` and ``apiVersion`` set.
    """
    from ..sources.files import iter_records, source_name

    chunk_size = 1000
    batch: list[tuple[int | None, bytes]] = []
    for record in iter_records(path):
        batch.append(record)
        if len(batch) >= chunk_size:
            yield from _dicts(decode_records(batch, source_name(path), redact=redact))
            batch = []
    if batch:
        yield from _dicts(decode_records(batch, source_name(path), redact=redact))


def _dicts(chunk: DecodedChunk) -> Iterator[dict[str, Any]]:
    for raw in chunk.raws:
        yield msgspec.json.decode(raw)
