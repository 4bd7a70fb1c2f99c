"""The quarantine file: every record kubetrail refused, with where it came from and why.

One JSON object per line: ``{"time", "source", "line", "index", "reason", "detail", "record"}``.
``record`` is the refused bytes as text (redacted like a stored event; see
:func:`kubetrail.model.decode.quarantine_bytes`). Nothing refused is ever lost: a user can fix the
records and ingest the file again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import msgspec

from .model.decode import Rejection

_ENCODER = msgspec.json.Encoder()


def quarantine_path(db_path: str | Path) -> Path:
    """The quarantine file that belongs to a store file: ``<db>.quarantine.jsonl``."""
    return Path(f"{db_path}.quarantine.jsonl")


class Quarantine:
    """Appends rejections to a quarantine file, opening it only when the first one comes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self._handle: IO[bytes] | None = None

    def write(self, rejections: Iterable[Rejection]) -> None:
        """Append rejections and flush them to the file."""
        lines = [self._line(r) for r in rejections]
        if not lines:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab")  # noqa: SIM115 - held open across batches
        self._handle.write(b"".join(lines))
        self._handle.flush()
        self.written += len(lines)

    @staticmethod
    def _line(rejection: Rejection) -> bytes:
        record = {
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "source": rejection.source,
            "line": rejection.line,
            "index": rejection.index,
            "reason": rejection.reason,
            "detail": rejection.detail,
            "record": rejection.raw.decode("utf-8", errors="replace"),
        }
        return _ENCODER.encode(record) + b"\n"

    def close(self) -> None:
        """Close the file if it was opened."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
