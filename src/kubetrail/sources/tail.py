"""Following the API server's audit log file across rotation, from a checkpoint.

The log backend (lumberjack) rotates by renaming ``audit.log`` to
``audit-<UTC 2006-01-02T15-04-05.000>.log``, optionally gzipping it later, and creating a new
``audit.log``; log agents may instead copy the file and truncate it (copy-truncate). The
follower keeps the file open by descriptor, so a rename never loses the old file's tail; on
restart it finds the checkpointed file again among ``audit.log`` and its backups by inode, or by
the fingerprint of its first bytes (a gzipped backup or copy-truncate's copy has a new inode),
then reads the backups newer than it, then the live file.

Only complete lines are handed out, in batches that never span two files; the caller ships a
batch and then calls :meth:`LogFollower.commit`, which saves the position after it.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .checkpoint import FINGERPRINT_BYTES, Checkpoint, Position, fingerprint

log = logging.getLogger("kubetrail.tail")

#: Longest line handed out whole; a longer one is cut (and refused downstream as invalid JSON).
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class Batch:
    """Complete lines of one file, and the position just after them.

    ``starts[i]`` is the offset where the line of ``records[i]`` begins (in the file of
    ``end``). A follower of many files sets ``key`` to the one the batch came from;
    ``not_audit`` counts container-log lines left out (see :mod:`.containertail`).
    """

    records: list[tuple[int | None, bytes]]
    end: Position
    starts: list[int] = field(default_factory=list)
    key: str = ""
    not_audit: int = 0


@dataclass
class _Open:
    path: Path
    handle: BinaryIO
    device: int
    inode: int
    offset: int
    live: bool
    head: bytes = b""
    raw: BinaryIO | None = None  # the file under a GzipFile, which does not close it

    def close(self) -> None:
        self.handle.close()
        if self.raw is not None:
            self.raw.close()


class LogFollower:
    """Reads new complete lines of a rotating log file, resuming from a checkpoint.

    Args:
        path: the live log file (``/var/log/kubernetes/audit/audit.log``).
        checkpoint: where the position is kept.
        batch_lines: lines per batch at most (default 400, the webhook's batch size).
        batch_bytes: bytes per batch at most (default 4 MiB).
    """

    def __init__(
        self,
        path: str | Path,
        checkpoint: Checkpoint,
        *,
        batch_lines: int = 400,
        batch_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.checkpoint = checkpoint
        self.batch_lines = batch_lines
        self.batch_bytes = batch_bytes
        self._current: _Open | None = None
        self._backlog: list[Path] = []
        self._started = False

    def next_batch(self) -> Batch | None:
        """The next batch of complete lines, or ``None`` when there is nothing new yet."""
        if not self._started:
            self._resume()
            self._started = True
        for _ in range(len(self._backlog) + 3):  # bounded: one pass per file to switch to
            current = self._current or self._open_next()
            if current is None:
                return None
            starts: list[int] = []
            lines = self._read_lines(current, starts)
            if lines:
                return Batch(lines, self._position(current), starts)
            if not self._advance(current):
                return None
        return None

    def commit(self, batch: Batch) -> None:
        """Save the position after ``batch`` (call once the batch is acknowledged)."""
        self.checkpoint.save(batch.end)

    def close(self) -> None:
        """Close the open file."""
        if self._current is not None:
            self._current.close()
            self._current = None

    # -- reading ------------------------------------------------------------------------

    def _read_lines(self, current: _Open, starts: list[int]) -> list[tuple[int | None, bytes]]:
        out: list[tuple[int | None, bytes]] = []
        size = 0
        handle = current.handle
        while len(out) < self.batch_lines and size < self.batch_bytes:
            start = handle.tell()
            line = handle.readline(MAX_LINE_BYTES)
            if not line:
                break
            partial = not line.endswith(b"\n") and len(line) < MAX_LINE_BYTES
            if partial and current.live:
                handle.seek(start)  # a line being written: wait for the rest
                break
            # (a finished, rotated file may end without a newline: its last line is complete)
            size += len(line)
            current.offset = handle.tell()
            if line.strip():
                out.append((None, line.rstrip(b"\r\n")))
                starts.append(start)
        self._remember_head(current)
        return out

    def _advance(self, current: _Open) -> bool:
        """At the end of ``current``: switch files if it was rotated or truncated."""
        if not current.live:
            self._switch(None)
            return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None  # between rename and create: the old descriptor may still grow
        fst = os.fstat(current.handle.fileno())
        if fst.st_size < current.offset or not self._same_head(current):
            return self._truncated(current)
        if st is not None and (st.st_dev, st.st_ino) != (current.device, current.inode):
            # Renamed away (lumberjack closes it first): read it to its end, last line
            # included, then the backups newer than it, then the new live file.
            log.info("%s was rotated; following the new file after this one", self.path)
            current.live = False
            self._backlog = [*self._newer_backups(current), self.path]
            return True
        return False

    def _truncated(self, current: _Open) -> bool:
        """copy-truncate: finish the acknowledged file from its copy, then read from 0."""
        log.info("%s was truncated (copy-truncate); reading the rest from its copy", self.path)
        position = self._position(current)
        copy = self._find(position, exclude_inode=current.inode)
        current.close()
        self._current = None
        if copy is not None:
            self._backlog = [self.path]
            self._current = self._open(copy, position.offset, live=False)
        else:
            log.warning("no copy of the truncated file found; lines written before it may be lost")
            self._backlog = []
            self._current = self._open(self.path, 0, live=True)
        return True

    # -- resuming -------------------------------------------------------------------------

    def _resume(self) -> None:
        position = self.checkpoint.load()
        if position is None:
            self._backlog = [self.path]
            return
        found = self._find(position)
        if found is None:
            log.warning(
                "the checkpointed file %s is gone; starting at %s", position.path, self.path
            )
            self._backlog = [self.path]
            return
        live = found == self.path
        self._current = self._open(found, position.offset, live=live)
        if not live:
            self._backlog = [*self._backups_after(found), self.path]

    def _find(self, position: Position, exclude_inode: int | None = None) -> Path | None:
        """The file a position belongs to: same inode and head first, then same head."""
        candidates = [self.path, *self._backups()]
        for path in candidates:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            same_inode = (st.st_dev, st.st_ino) == (position.device, position.inode)
            long_enough = path.name.endswith(".gz") or st.st_size >= position.offset
            if (
                same_inode
                and long_enough
                and st.st_ino != exclude_inode
                and self._matches(path, position)
            ):
                return path
        for path in candidates:
            if (
                position.fingerprint_len > 0
                and path.exists()
                and os.stat(path).st_ino != exclude_inode
                and self._matches(path, position)
            ):
                return path
        return None

    def _matches(self, path: Path, position: Position) -> bool:
        head = _read_head(path, position.fingerprint_len)
        if len(head) < position.fingerprint_len:
            return False
        return fingerprint(head[: position.fingerprint_len]) == position.fingerprint

    def _backups(self) -> list[Path]:
        """Rotated backups of the live file, oldest first.

        lumberjack's ``audit-<time>.log[.gz]`` and the kubelet's container log backups
        ``0.log.<YYYYMMDD-hhmmss>[.gz]`` sort by name; logrotate's ``audit.log.<n>[.gz]``
        (copy-truncate) and Docker's ``-json.log.<n>`` by ``n``, highest (oldest) first. While
        a backup and its ``.gz`` both exist (during compression), only the uncompressed one
        counts: it still has the inode a checkpoint names.
        """
        stem, ext = self.path.stem, self.path.suffix
        timed = [
            p
            for p in self.path.parent.glob(f"{stem}-*{ext}*")
            if p.name.endswith(ext) or p.name.endswith(ext + ".gz")
        ]
        numbered = [
            p
            for p in self.path.parent.glob(f"{self.path.name}.*")
            if p.name.removesuffix(".gz").rpartition(".")[2].isdigit()
        ]
        kubelet_name = re.compile(re.escape(self.path.name) + r"\.\d{8}-\d{6}(?:\.gz)?")
        siblings = self.path.parent.glob(f"{self.path.name}.*")
        kubelet = [p for p in siblings if kubelet_name.fullmatch(p.name)]
        timed.sort(key=lambda p: p.name.removesuffix(".gz"))
        kubelet.sort(key=lambda p: p.name.removesuffix(".gz"))
        numbered.sort(key=lambda p: -int(p.name.removesuffix(".gz").rpartition(".")[2]))
        found = timed + kubelet + numbered
        names = {p.name for p in found}
        return [p for p in found if not (p.name.endswith(".gz") and p.name[:-3] in names)]

    def _backups_after(self, path: Path) -> list[Path]:
        backups = self._backups()
        return backups[backups.index(path) + 1 :] if path in backups else []

    def _newer_backups(self, current: _Open) -> list[Path]:
        backups = self._backups()
        for path in backups:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == (current.device, current.inode):
                return self._backups_after(path)
        # Renamed and already compressed (a new inode): known by its first bytes.
        for path in backups:
            if current.head and _read_head(path, len(current.head)) == current.head:
                return self._backups_after(path)
        return []

    # -- files ----------------------------------------------------------------------------

    def _open_next(self) -> _Open | None:
        while self._backlog:
            path = self._backlog[0]
            if not path.exists():
                if path == self.path:
                    return None  # the live file is not created yet
                self._backlog.pop(0)
                continue
            self._backlog.pop(0)
            self._current = self._open(path, 0, live=path == self.path)
            return self._current
        return None

    def _switch(self, to: _Open | None) -> None:
        if self._current is not None:
            self._current.close()
        self._current = to

    def _open(self, path: Path, offset: int, *, live: bool) -> _Open:
        raw = open(path, "rb")  # noqa: SIM115 - held open across calls
        st = os.fstat(raw.fileno())
        handle: BinaryIO = raw
        if path.name.endswith(".gz"):
            handle = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        handle.seek(offset)
        current = _Open(path, handle, st.st_dev, st.st_ino, offset, live, raw=raw)
        self._remember_head(current)
        return current

    def _remember_head(self, current: _Open) -> None:
        want = min(current.offset, FINGERPRINT_BYTES)
        if len(current.head) >= want:
            return
        if current.path.name.endswith(".gz"):
            current.head = _read_head(current.path, want)
        else:  # by descriptor: the path may already name a newer file
            current.head = os.pread(current.handle.fileno(), want, 0)

    def _same_head(self, current: _Open) -> bool:
        if not current.head:
            return True
        return os.pread(current.handle.fileno(), len(current.head), 0) == current.head

    def _position(self, current: _Open) -> Position:
        head = current.head[: min(current.offset, FINGERPRINT_BYTES)]
        return Position(
            path=str(current.path),
            device=current.device,
            inode=current.inode,
            offset=current.offset,
            fingerprint=fingerprint(head),
            fingerprint_len=len(head),
        )


def _read_head(path: Path, size: int) -> bytes:
    if size <= 0:
        return b""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read(size)
        with open(path, "rb") as handle:
            return handle.read(size)
    except (OSError, EOFError):
        return b""


def follow(
    follower: LogFollower,
    send: Callable[[Batch], None],
    stop: Callable[[], bool],
    *,
    poll_seconds: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Ship batches until ``stop()`` is true; return the number of lines shipped.

    ``send`` must return only once the batch is acknowledged (retrying as it sees fit); the
    position is saved after each acknowledged batch, so memory holds one batch at most.
    """
    shipped = 0
    while not stop():
        batch = follower.next_batch()
        if batch is None:
            sleep(poll_seconds)
            continue
        send(batch)
        follower.commit(batch)
        shipped += len(batch.records)
    return shipped
