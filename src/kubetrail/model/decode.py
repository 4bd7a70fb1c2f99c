"""Decoding of raw input records into audit events, with a reason for every record refused.

A record is one line of a JSON-lines file, or one whole JSON document. It may hold an ``Event``
or an ``EventList`` (whose items become events of their own). Bad records never stop the good
ones: each yields a :class:`Rejection` that names the source, line, item index and reason.

Redaction happens here, at the earliest point, so that a Secret's values never reach any later
stage (the Arrow batch, the store, the quarantine file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import EventError
from .event import HEAD_DECODER, EventHead
from .redact import might_need_redaction, redact_event
from .validate import API_VERSIONS, check_envelope, check_event

_ITEM_PREFIX = b'{"kind":"Event","apiVersion":'


class TruncatedRecord(bytes):
    """Stands in for a record too large to read: holds its first bytes and its full size."""

    size: int

    def __new__(cls, head: bytes, size: int) -> TruncatedRecord:
        record = super().__new__(cls, head)
        record.size = size
        return record


@dataclass(frozen=True)
class Rejection:
    """A record (or EventList item) that could not be stored, and why.

    Attributes:
        source: the file path, ``<stdin>`` or ``webhook``.
        line: 1-based line of the record in ``source`` (``None`` for whole documents).
        index: position inside an EventList, when the record was one of its items.
        reason: stable, bounded text used to count rejections (``missing required field 'verb'``).
        detail: the specific problem (values included).
        raw: the record's bytes, redacted when it could be decoded; see :func:`quarantine_bytes`.
    """

    source: str
    line: int | None
    index: int | None
    reason: str
    detail: str
    raw: bytes

    def as_error(self) -> EventError:
        """The rejection as an :class:`~kubetrail.errors.EventError`."""
        return EventError(
            f"{self.reason}: {self.detail}", source=self.source, line=self.line, index=self.index
        )


@dataclass
class DecodedChunk:
    """Events decoded from a run of records, in input order, plus the records refused.

    ``heads[i]``, ``raws[i]`` and ``redacted[i]`` describe the same event; ``raws[i]`` is the
    event's JSON as it will be stored (after redaction, with ``kind``/``apiVersion`` added to
    EventList items so that an export can be read back as JSON lines).
    """

    source: str
    heads: list[EventHead] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    redacted: list[bool] = field(default_factory=list)
    positions: list[tuple[int | None, int | None]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Events plus rejections: everything this chunk read."""
        return len(self.heads) + len(self.rejections)


def decode_records(
    records: Iterable[tuple[int | None, bytes]], source: str, *, redact: bool = True
) -> DecodedChunk:
    """Decode raw records into events.

    Args:
        records: ``(line_number, bytes)`` pairs; line number ``None`` for whole documents.
        source: where the records come from, for rejection messages.
        redact: remove Secret values (see :mod:`kubetrail.model.redact`). Default ``True``.

    Returns:
        The decoded events and the rejections, in input order.
    """
    chunk = DecodedChunk(source)
    heads, raws, flags, positions = chunk.heads, chunk.raws, chunk.redacted, chunk.positions
    decode = HEAD_DECODER.decode
    for line_no, raw in records:
        # The common case inline (a third of the per-record cost is calls): one Event of a
        # known apiVersion that passes every check. Anything else, or anything that fails,
        # takes the general path, which decodes again and names the reason.
        if type(raw) is bytes:
            try:
                head = decode(raw)
            except (msgspec.DecodeError, RecursionError):
                head = None
            if (
                head is not None
                and head.kind == "Event"
                and head.apiVersion in API_VERSIONS
                and check_event(head) is None
            ):
                redacted = False
                if redact and might_need_redaction(raw, head.level):
                    raw, redacted = _redacted(raw)
                heads.append(head)
                raws.append(raw.strip())
                flags.append(redacted)
                positions.append((line_no, None))
                continue
        _decode_one(chunk, line_no, raw, redact)
    return chunk


def _decode_one(chunk: DecodedChunk, line_no: int | None, raw: bytes, redact: bool) -> None:
    if isinstance(raw, TruncatedRecord):
        detail = f"the record is {raw.size} bytes long; only its first {len(raw)} were kept"
        chunk.rejections.append(
            Rejection(chunk.source, line_no, None, "record too large", detail, b"")
        )
        return
    try:
        head = HEAD_DECODER.decode(raw)
    except RecursionError:
        chunk.rejections.append(_nested_too_deeply(chunk, line_no, None, raw))
        return
    except msgspec.ValidationError as exc:
        reason = _shape_reason(raw, exc)
        chunk.rejections.append(_reject(chunk, line_no, None, reason, str(exc), raw, redact))
        return
    except msgspec.DecodeError as exc:
        chunk.rejections.append(
            Rejection(chunk.source, line_no, None, "invalid JSON", str(exc), _withheld(raw, redact))
        )
        return
    problem = check_envelope(head)
    if problem is not None:
        chunk.rejections.append(_reject(chunk, line_no, None, *problem, raw, redact))
        return
    if head.kind == "EventList":
        _decode_list(chunk, line_no, head, raw, redact)
        return
    _accept(chunk, line_no, None, head, raw, redact)


def _decode_list(
    chunk: DecodedChunk, line_no: int | None, envelope: EventHead, raw: bytes, redact: bool
) -> None:
    if envelope.items is None:
        chunk.rejections.append(
            _reject(
                chunk, line_no, None, "missing required field 'items'", "EventList", raw, redact
            )
        )
        return
    version = envelope.apiVersion or ""
    prefix = _ITEM_PREFIX + msgspec.json.encode(version) + b","
    for index, item in enumerate(envelope.items):
        item_raw = bytes(item)
        try:
            head = HEAD_DECODER.decode(item_raw)
        except RecursionError:
            chunk.rejections.append(_nested_too_deeply(chunk, line_no, index, item_raw))
            continue
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
            reason = _shape_reason(item_raw, exc)
            chunk.rejections.append(
                _reject(chunk, line_no, index, reason, str(exc), item_raw, redact)
            )
            continue
        problem = check_envelope(head, inherited_version=version)
        if problem is not None:
            chunk.rejections.append(_reject(chunk, line_no, index, *problem, item_raw, redact))
            continue
        if head.apiVersion is None and item_raw.startswith(b"{") and item_raw != b"{}":
            # Items carry no kind/apiVersion; give them the log backend's envelope, and the
            # list's version to the event_version column too.
            item_raw = prefix + item_raw[1:].lstrip()
            head.apiVersion = version or None
        _accept(chunk, line_no, index, head, item_raw, redact)


def _accept(
    chunk: DecodedChunk,
    line_no: int | None,
    index: int | None,
    head: EventHead,
    raw: bytes,
    redact: bool,
) -> None:
    problem = check_event(head)
    if problem is not None:
        chunk.rejections.append(_reject(chunk, line_no, index, *problem, raw, redact))
        return
    redacted = False
    if redact and might_need_redaction(raw, head.level):
        raw, redacted = _redacted(raw)
    chunk.heads.append(head)
    chunk.raws.append(raw.strip())
    chunk.redacted.append(redacted)
    chunk.positions.append((line_no, index))


def _redacted(raw: bytes) -> tuple[bytes, bool]:
    event: dict[str, Any] = msgspec.json.decode(raw)
    if not redact_event(event):
        return raw, False
    return msgspec.json.encode(event), True


def _reject(
    chunk: DecodedChunk,
    line_no: int | None,
    index: int | None,
    reason: str,
    detail: str,
    raw: bytes,
    redact: bool,
) -> Rejection:
    return Rejection(chunk.source, line_no, index, reason, detail, quarantine_bytes(raw, redact))


def _nested_too_deeply(
    chunk: DecodedChunk, line_no: int | None, index: int | None, raw: bytes
) -> Rejection:
    detail = "the JSON nests deeper than the decoder allows"
    withheld = _withheld(raw, True)
    return Rejection(chunk.source, line_no, index, "nested too deeply", detail, withheld)


def quarantine_bytes(raw: bytes, redact: bool) -> bytes:
    """The bytes of a refused record that may be written to the quarantine file.

    A record that parses as a JSON object is redacted like a stored event; one that does not
    parse but might hold a Secret's values is withheld (only its size is kept).
    """
    if not redact or not might_need_redaction(raw):
        return raw
    try:
        event = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return _withheld(raw, redact)
    if isinstance(event, dict) and redact_event(event):
        return msgspec.json.encode(event)
    return raw


def _withheld(raw: bytes, redact: bool) -> bytes:
    if redact and (b"ecret" in raw or b"Token" in raw):
        return b"<withheld: unparseable record of %d bytes that may hold secret values>" % len(raw)
    return raw


def _shape_reason(raw: bytes, exc: msgspec.DecodeError) -> str:
    """Name the problem of a record that is JSON but not shaped like an event."""
    if isinstance(exc, msgspec.ValidationError):
        if "got `array`" in str(exc) and "at `$" not in str(exc):
            return "not a JSON object"
        if str(exc).startswith("Expected `object`"):
            return "not a JSON object"
        return "field of the wrong type"
    return "invalid JSON"
