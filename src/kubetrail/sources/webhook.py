"""The body of a webhook request, turned into records for the pipeline.

The API server's webhook backend POSTs one ``EventList`` per batch as ``application/json``.
kubetrail also accepts a single ``Event``, a JSON array of events, and JSON lines
(``application/x-ndjson``, ``application/jsonl``, or ``application/json`` with one value per
line, which is what ``kubetrail collect`` sends). ``Content-Encoding: gzip`` is decompressed
with a bound on the decompressed size, so a small body cannot expand without limit.

Only a body that cannot be read at all raises :class:`BodyError`; events that are JSON but not
valid events become per-event rejections later, in :func:`~kubetrail.model.normalize`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import msgspec

#: Content types accepted (parameters such as ``charset`` are ignored).
CONTENT_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
SOURCE = "webhook"
TOO_DEEP = "the body's JSON is nested too deeply"

Record = tuple[int | None, bytes]


class BodyError(Exception):
    """The request body cannot be used: ``status`` is 400, 413 or 415."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Body:
    """The records of a request body.

    Attributes:
        records: ``(line, bytes)`` pairs; ``line`` is ``None`` for a single document.
        lines: ``True`` when the body was JSON lines (rejections are then indexed by line).
    """

    records: list[Record]
    lines: bool


def check_content_type(content_type: str | None) -> None:
    """Refuse a content type other than JSON or JSON lines (a missing one means JSON).

    Raises:
        BodyError: 415.
    """
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        allowed = ", ".join(sorted(CONTENT_TYPES))
        raise BodyError(415, f"content type {media!r} is not accepted; use one of: {allowed}")


def decode_body(data: bytes, content_encoding: str | None, max_decompressed: int) -> bytes:
    """Undo ``Content-Encoding`` (``gzip`` or ``identity``).

    Raises:
        BodyError: 415 for another encoding, 400 for a broken gzip stream, 413 when the
            decompressed body would exceed ``max_decompressed`` bytes.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return data
    if encoding not in ("gzip", "x-gzip"):
        raise BodyError(415, f"content encoding {encoding!r} is not accepted; use gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, max_decompressed + 1)
        if len(out) > max_decompressed or inflater.unconsumed_tail:
            raise BodyError(413, f"the decompressed body exceeds {max_decompressed} bytes")
        out += inflater.flush()
    except zlib.error as exc:
        raise BodyError(400, f"the body is not valid gzip: {exc}") from exc
    if not inflater.eof:
        raise BodyError(400, "the gzip stream is truncated")
    return out


def parse_body(data: bytes) -> Body:
    """Split a decoded body into records: one document, a JSON array, or JSON lines.

    Raises:
        BodyError: 400 when the body is empty or no part of it is JSON at all.
    """
    text = data.strip()
    if not text:
        raise BodyError(400, "the body is empty")
    if text[:1] not in (b"{", b"["):
        raise BodyError(400, "the body is not JSON (expected an EventList, an Event or lines)")
    if _is_json(text):
        if text[:1] == b"[":
            items = msgspec.json.decode(text, type=list[msgspec.Raw])
            return Body([(i + 1, bytes(item)) for i, item in enumerate(items)], lines=True)
        return Body([(None, text)], lines=False)
    # Not one document: JSON lines (the first line must be a JSON value).
    lines = [line.strip() for line in text.split(b"\n")]
    records = [(n, line) for n, line in enumerate((x for x in lines if x), start=1)]
    if not _is_json(records[0][1]) and not any(_is_json(r) for _, r in records[1:]):
        raise BodyError(400, "the body is neither a JSON document nor JSON lines")
    return Body(records, lines=True)


def _is_json(data: bytes) -> bool:
    try:
        msgspec.json.decode(data, type=msgspec.Raw)  # validates without building objects
    except msgspec.DecodeError:
        return False
    except RecursionError:
        raise BodyError(400, TOO_DEEP) from None
    return True
