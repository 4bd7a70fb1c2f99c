"""Reading audit events from files and standard input.

A file may be JSON lines (the log backend's format: one Event per line, or one EventList per
line), or one JSON document spread over many lines (a pretty-printed EventList or Event, or a
JSON array of events). Gzip is recognised by its magic bytes, whatever the file is called.
``-`` is standard input. A container log (CRI or Docker json-file, see
:mod:`.containerlog`) is unwrapped first; ``auto`` tells the three apart per file from its
first record. Memory stays bounded: lines are read one at a time with a length cap,
and whole documents are read only up to :data:`MAX_DOCUMENT_BYTES`.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..errors import SourceError
from ..model.decode import TruncatedRecord
from .containerlog import UnwrapStats, detect_format, unwrap_records

#: Longest line accepted; longer ones are refused (their bytes skipped, never held in memory).
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Largest multi-line JSON document read whole.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"
_PEEK_BYTES = 4096

#: A record: its 1-based line number (``None`` for a whole document) and its bytes.
Record = tuple[int | None, bytes]


def source_name(path: str | Path) -> str:
    """The name a path is known by in summaries and rejection messages."""
    return "<stdin>" if str(path) == STDIN else str(path)


@contextmanager
def open_binary(path: str | Path) -> Iterator[BinaryIO]:
    """Open a path (or ``-``) for binary reading, decompressing gzip transparently.

    Raises:
        SourceError: the file cannot be opened.
    """
    try:
        if str(path) == STDIN:
            raw: BinaryIO = sys.stdin.buffer
            buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
            yield _maybe_gunzip(buffered)
            return
        with open(path, "rb") as handle:
            yield _maybe_gunzip(handle)
    except OSError as exc:
        raise SourceError(f"{source_name(path)}: cannot read: {exc.strerror or exc}") from exc


def _maybe_gunzip(handle: BinaryIO) -> BinaryIO:
    peek = handle.peek(2)[:2] if hasattr(handle, "peek") else b""
    if peek == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def iter_records(
    path: str | Path, format_in: str = "jsonl", stats: UnwrapStats | None = None
) -> Iterator[Record]:
    """Yield the records of a file (or ``-``): its lines, or its one multi-line document.

    Blank lines are skipped. A file whose first non-blank line is not a complete JSON value but
    whose whole content is (up to :data:`MAX_DOCUMENT_BYTES`) is one document.

    Args:
        path: the file, or ``-``.
        format_in: ``jsonl`` (default), ``cri``, ``docker``, or ``auto`` to detect it from the
            first record. A container log yields its audit messages, each with the line of
            the record where it started.
        stats: counts the container log's lines that are not audit events.

    Raises:
        SourceError: the file cannot be opened or decompressed.
    """
    with open_binary(path) as handle:
        try:
            fmt = detect_format(_peek(handle)) if format_in == "auto" else format_in
            if fmt == "jsonl":
                yield from _records(handle)
            else:
                yield from unwrap_records(_lines(handle), fmt, stats or UnwrapStats())
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"{source_name(path)}: cannot read: {exc}") from exc


def _peek(handle: BinaryIO) -> bytes:
    return handle.peek(_PEEK_BYTES)[:_PEEK_BYTES] if hasattr(handle, "peek") else b""


def _lines(handle: BinaryIO) -> Iterator[Record]:
    """Every non-blank line, without its line end; an overlong one as a TruncatedRecord."""
    line_no = 0
    while line := handle.readline(MAX_LINE_BYTES + 1):
        line_no += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            yield line_no, _skip_rest(handle, line)
        elif line.strip():
            yield line_no, line.rstrip(b"\r\n")


def _records(handle: BinaryIO) -> Iterator[Record]:
    line_no = 0
    first = True
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        line_no += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            yield line_no, _skip_rest(handle, line)
            first = False
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if first:
            first = False
            if stripped[:1] in (b"{", b"[") and not _is_json(stripped):
                document = _read_document(handle, line)
                if document is not None and document.startswith(b"["):
                    yield from _array_items(document)
                    return
                if document is not None:
                    yield None, document
                    return
            if stripped[:1] == b"[" and _is_json(stripped):
                yield from _array_items(stripped)
                continue
        yield line_no, stripped


def _skip_rest(handle: BinaryIO, head: bytes) -> bytes:
    size = len(head)
    while True:
        more = handle.readline(MAX_LINE_BYTES)
        size += len(more)
        if not more or more.endswith(b"\n"):
            break
    return TruncatedRecord(head[:200], size)


def _is_json(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


def _read_document(handle: BinaryIO, first_line: bytes) -> bytes | None:
    """Read the rest of the file as one document; ``None`` (and nothing lost) if it is not one.

    Only seekable files are tried; for a stream the lines are handed on as they are.
    """
    if not handle.seekable():
        return None
    start = handle.tell()
    rest = handle.read(MAX_DOCUMENT_BYTES)
    document = (first_line + rest).strip()
    if len(document) < MAX_DOCUMENT_BYTES and _is_json(document):
        return document
    handle.seek(start)
    return None


def _array_items(document: bytes) -> Iterator[Record]:
    items = msgspec.json.decode(document, type=list[msgspec.Raw])
    for item in items:
        yield None, bytes(item)
