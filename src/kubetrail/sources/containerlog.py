"""Audit events in a container log: the CRI and Docker json-file wrappers, unwrapped.

With ``--audit-log-path=-`` the API server writes its audit events to standard output, and the
container runtime wraps every line it writes to the node's log file:

* CRI (containerd, CRI-O): ``<RFC3339Nano time> <stdout|stderr> <tags> <message>``. The first
  ``:``-separated tag is ``P`` for a partial line, continued by the next records of the same
  stream until one tagged ``F`` (the runtimes split lines longer than 16 KiB by default).
* Docker json-file: ``{"log": "...\\n", "stream": "stdout", "time": "..."}``; a line longer
  than 16 KiB is split into records whose ``log`` does not end in a newline.

Without a wrapper, the container's output as ``kubectl logs`` or ``journalctl -o cat`` prints
it starts with the API server's own lines (klog ``I1123 12:00:00.000000 1 file.go:12] …``, or
``Flag --… has been deprecated``): ``auto`` then reads it as ``text``, one message per line,
sorted into audit events and other lines the same way.

The kubelet's own reader (``pkg/kubelet/kuberuntime/logs``) parses both the same way: joining
is per stream, since stdout and stderr records interleave. The API server's own log lines
(klog text or JSON, warnings, Go stack traces) share the file: they are counted as
``not_audit`` and dropped. A message that looks like an audit event (a JSON object naming
``auditID``, an ``audit.k8s.io`` apiVersion or kind ``Event``/``EventList``) is handed on, so a
malformed one is refused with its reason, like any bad record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from ..model.decode import TruncatedRecord

#: The ``--format-in`` values.
FORMATS = ("auto", "jsonl", "cri", "docker")
#: Longest joined message; a longer one is refused as too large (its parts are not kept).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_CRI_PREFIX = re.compile(rb"\s*\d{4}-\d\d-\d\dT[^ ]+ (?:stdout|stderr) [^ \n]+(?: |\r?\n|$)")
_DOCKER_PREFIX = re.compile(rb'\s*\{\s*"log"\s*:')
_KLOG_PREFIX = re.compile(rb"\s*(?:[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ |Flag --)")
_AUDIT_MARKERS = re.compile(
    rb'"auditID"\s*:|"apiVersion"\s*:\s*"audit\.k8s\.io/|"kind"\s*:\s*"Event(?:List)?"'
)
_STREAMS = frozenset({b"stdout", b"stderr"})

#: Whatever marks where a record starts (a line number, or a position in a file).
Mark = TypeVar("Mark")


class _DockerRecord(msgspec.Struct):
    log: str = ""
    stream: str = ""


_DOCKER_DECODER = msgspec.json.Decoder(_DockerRecord)


def detect_format(head: bytes) -> str:
    """The wrapper of a file, from its first bytes: ``cri``, ``docker``, ``text`` or ``jsonl``.

    Leading blank lines are skipped; only the first record's prefix is looked at.
    """
    start = len(head) - len(head.lstrip())
    first = head[start:]
    if _CRI_PREFIX.match(first):
        return "cri"
    if _DOCKER_PREFIX.match(first):
        return "docker"
    if _KLOG_PREFIX.match(first):
        return "text"
    return "jsonl"


def looks_like_audit(message: bytes) -> bool:
    """Whether a message is meant to be an audit event (then a bad one is an error)."""
    stripped = message.lstrip()
    if stripped[:1] != b"{":
        return False
    return b'"auditID"' in stripped or _AUDIT_MARKERS.search(stripped) is not None


@dataclass
class _Partial(Generic[Mark]):
    mark: Mark
    seq: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


class Unwrapper(Generic[Mark]):
    """Turns the records of one container's log into its complete messages.

    Feed the records in file order with :meth:`feed`; each call returns the audit messages it
    completed, with the mark of the record where each started. Lines that are not audit events
    are counted in :attr:`not_audit`. State (the partial lines still open) carries over from
    one call, and one file, to the next: a kubelet rotation may fall inside a long line.

    Args:
        fmt: ``cri``, ``docker``, or ``text`` (no wrapper: every line stands alone).
        max_bytes: longest joined message (default :data:`MAX_MESSAGE_BYTES`).
    """

    def __init__(self, fmt: str, *, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        if fmt not in _PARSERS:
            raise ValueError(f"not a container log format: {fmt!r}")
        self._parse = _PARSERS[fmt]
        self.max_bytes = max_bytes
        self.not_audit = 0
        self._open: dict[bytes, _Partial[Mark]] = {}
        self._seq = 0

    def feed(self, record: bytes, mark: Mark) -> list[tuple[Mark, bytes]]:
        """Take one record; return the audit messages it completes (usually 0 or 1)."""
        parsed = self._parse(record)
        if parsed is None:  # not a record of this format: the line stands alone
            return self._complete(mark, record)
        stream, partial, message = parsed
        pending = self._open.get(stream)
        if pending is None and not partial:
            return self._complete(mark, message)
        if pending is None:
            self._seq += 1
            pending = self._open[stream] = _Partial(mark, self._seq)
        if pending.size <= self.max_bytes:
            pending.parts.append(message)
        pending.size += len(message)
        if partial:
            return []
        del self._open[stream]
        return self._finish(pending)

    def flush(self) -> list[tuple[Mark, bytes]]:
        """The partial lines still open, as they are (call at the end of the input)."""
        out: list[tuple[Mark, bytes]] = []
        for pending in sorted(self._open.values(), key=lambda p: p.seq):
            out.extend(self._finish(pending))
        self._open.clear()
        return out

    def earliest_open(self) -> Mark | None:
        """The mark of the oldest partial line not yet completed, if any."""
        if not self._open:
            return None
        return min(self._open.values(), key=lambda p: p.seq).mark

    def _finish(self, pending: _Partial[Mark]) -> list[tuple[Mark, bytes]]:
        if pending.size > self.max_bytes:
            head = b"".join(pending.parts)[:200]
            if not looks_like_audit(head):
                self.not_audit += 1
                return []
            return [(pending.mark, TruncatedRecord(head, pending.size))]
        return self._complete(pending.mark, b"".join(pending.parts))

    def _complete(self, mark: Mark, message: bytes) -> list[tuple[Mark, bytes]]:
        if not message.strip():
            return []
        if looks_like_audit(message):
            return [(mark, message.strip())]
        self.not_audit += 1
        return []


def _parse_cri(record: bytes) -> tuple[bytes, bool, bytes] | None:
    fields = record.split(b" ", 3)
    if len(fields) < 3 or fields[1] not in _STREAMS or not fields[0][:4].isdigit():
        return None
    partial = fields[2].split(b":", 1)[0] == b"P"
    message = fields[3] if len(fields) == 4 else b""
    return fields[1], partial, message.rstrip(b"\r\n") if not partial else message


def _parse_docker(record: bytes) -> tuple[bytes, bool, bytes] | None:
    try:
        parsed = _DOCKER_DECODER.decode(record)
    except msgspec.DecodeError:
        return None
    log = parsed.log.encode()
    partial = not log.endswith(b"\n")
    return parsed.stream.encode(), partial, log if partial else log.rstrip(b"\r\n")


def _parse_text(record: bytes) -> None:
    return None


_PARSERS: dict[str, Callable[[bytes], tuple[bytes, bool, bytes] | None]] = {
    "cri": _parse_cri,
    "docker": _parse_docker,
    "text": _parse_text,
}


@dataclass
class UnwrapStats:
    """What unwrapping left out: lines that were not audit events."""

    not_audit: int = 0


def unwrap_records(
    records: Iterable[tuple[int | None, bytes]], fmt: str, stats: UnwrapStats
) -> Iterator[tuple[int | None, bytes]]:
    """The audit messages of one whole file's records, each with the line where it started.

    Partial lines still open at the end of the file are handed on as they are (a truncated
    audit event is then refused as invalid JSON, with its line).
    """
    unwrapper: Unwrapper[int | None] = Unwrapper(fmt)
    try:
        for line_no, record in records:
            if isinstance(record, TruncatedRecord):  # a line over the reader's cap
                yield line_no, record
                continue
            yield from unwrapper.feed(record, line_no)
        yield from unwrapper.flush()
    finally:
        stats.not_audit += unwrapper.not_audit
