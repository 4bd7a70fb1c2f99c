"""Following the API server's container log: unwrapped, across kubelet rotation and restarts.

:class:`ContainerLogFollower` follows one log file with :class:`~.tail.LogFollower` (rename
rotation, gzip of older backups, checkpoint) and unwraps its CRI or Docker records
(:mod:`.containerlog`); a plain audit log (JSON lines) passes through unchanged.

:class:`GlobFollower` follows every file a glob such as
``/var/log/containers/kube-apiserver-*.log`` matches, re-evaluating it so that the file of a
restarted pod (a new container id, so a new name) is picked up. Each real file (the target of
the ``/var/log/containers`` symlink, in ``/var/log/pods/<ns>_<pod>_<uid>/<container>/``) has a
checkpoint of its own.

Partial records across a rotation: a long line the runtime split into ``P`` records may be cut
by the kubelet's rotation, its start in ``0.log.<time>`` and its end in the new ``0.log``. The
open partial line is kept in memory from one file to the next, and the checkpoint saved after a
batch is the start of the oldest partial line still open (in whichever file it lies), never a
point inside it: after a restart the line is read again whole. Complete events read again that
way are sent twice and stored once (the store deduplicates).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .checkpoint import Checkpoint, Position
from .containerlog import Unwrapper, detect_format
from .tail import Batch, LogFollower

log = logging.getLogger("kubetrail.tail")

#: Names that are backups (rotated or being compressed), never files to follow on their own.
_BACKUP_NAME = re.compile(r".*\.(?:\d{8}-\d{6}(?:\.gz)?|gz|tmp|\d+)")
#: A followed file missing this long (and read to its end) is forgotten with its checkpoint.
RETIRE_AFTER_SECONDS = 300.0


class ContainerLogFollower:
    """Reads the audit events of one log file, unwrapping a container log.

    Args:
        path: the live file (a container log such as ``/var/log/pods/…/0.log``, or an audit
            log).
        checkpoint: where the position is kept.
        format_in: ``auto`` (default: detected from the first record read), ``jsonl``,
            ``cri`` or ``docker``.
        batch_lines: log records per batch at most (default 400).
        key: set on every batch (a :class:`GlobFollower` uses the real path).
    """

    def __init__(
        self,
        path: str | Path,
        checkpoint: Checkpoint,
        *,
        format_in: str = "auto",
        batch_lines: int = 400,
        key: str = "",
    ) -> None:
        self.follower = LogFollower(path, checkpoint, batch_lines=batch_lines)
        self.format: str | None = None if format_in == "auto" else format_in
        self.key = key
        self._unwrapper: Unwrapper[Position] | None = None

    def next_batch(self) -> Batch | None:
        """The next batch of audit events, or ``None`` when there is nothing new yet.

        A batch may hold no event (only other log lines, or the start of a long line); it
        still moves the position on once committed.
        """
        raw = self.follower.next_batch()
        if raw is None:
            return None
        if self.format is None:
            self.format = detect_format(raw.records[0][1])
            log.info("%s: %s records", self.follower.path, self.format)
        if self.format == "jsonl":
            raw.key = self.key
            return raw
        if self._unwrapper is None:
            self._unwrapper = Unwrapper(self.format)
        unwrapper = self._unwrapper
        skipped = unwrapper.not_audit
        events: list[tuple[int | None, bytes]] = []
        for (_, record), start in zip(raw.records, raw.starts, strict=True):
            for _, message in unwrapper.feed(record, replace(raw.end, offset=start)):
                events.append((None, message))
        end = unwrapper.earliest_open() or raw.end
        return Batch(events, end, key=self.key, not_audit=unwrapper.not_audit - skipped)

    def commit(self, batch: Batch) -> None:
        """Save the position after ``batch`` (call once the batch is acknowledged)."""
        self.follower.commit(batch)

    def close(self) -> None:
        """Close the open file."""
        self.follower.close()


class GlobFollower:
    """Follows every file a glob matches, each from its own checkpoint.

    Args:
        pattern: a glob (``/var/log/containers/kube-apiserver-*.log``); symlinks are followed
            to their real file, backups (``0.log.20240501-120000``, ``.gz``) are not matched
            on their own (the follower of their live file reads them).
        checkpoint_dir: one checkpoint file per real file, named by a hash of its path.
        format_in: as for :class:`ContainerLogFollower` (detected per file with ``auto``).
        batch_lines: log records per batch at most (default 400).
        retire_after: seconds a followed file may be missing before it is forgotten.
        clock: the time source (tests pass a fake).
    """

    def __init__(
        self,
        pattern: str,
        checkpoint_dir: str | Path,
        *,
        format_in: str = "auto",
        batch_lines: int = 400,
        retire_after: float = RETIRE_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pattern = pattern
        self.checkpoint_dir = Path(checkpoint_dir)
        self.format_in = format_in
        self.batch_lines = batch_lines
        self.retire_after = retire_after
        self._clock = clock
        self._followers: dict[str, ContainerLogFollower] = {}
        self._missing_since: dict[str, float] = {}
        self._next = 0
        self._warned = False

    @property
    def files(self) -> list[str]:
        """The real files being followed."""
        return sorted(self._followers)

    def next_batch(self) -> Batch | None:
        """The next batch of any followed file, or ``None`` when none has anything new."""
        for rescan in (not self._followers, True):
            if rescan:
                self._discover()
            batch = self._poll()
            if batch is not None:
                return batch
        self._retire()
        return None

    def commit(self, batch: Batch) -> None:
        """Save the position of the file ``batch`` came from."""
        self._followers[batch.key].commit(batch)

    def close(self) -> None:
        """Close every open file."""
        for follower in self._followers.values():
            follower.close()

    def _poll(self) -> Batch | None:
        keys = sorted(self._followers)
        for i in range(len(keys)):  # round robin: a busy file does not starve the others
            key = keys[(self._next + i) % len(keys)]
            batch = self._followers[key].next_batch()
            if batch is not None:
                self._next = (self._next + i + 1) % len(keys)
                return batch
        return None

    def _discover(self) -> None:
        matches = sorted(glob.glob(self.pattern))
        if not matches and not self._followers and not self._warned:
            log.warning("%s matches no file yet; waiting for one", self.pattern)
            self._warned = True
        for match in matches:
            real = os.path.realpath(match)
            if real in self._followers or _BACKUP_NAME.fullmatch(os.path.basename(real)):
                continue
            if not os.path.isfile(real):
                continue  # a dangling symlink: the container's logs are gone
            log.info("following %s (%s)", real, match)
            self._followers[real] = ContainerLogFollower(
                real,
                self._checkpoint(real),
                format_in=self.format_in,
                batch_lines=self.batch_lines,
                key=real,
            )

    def _retire(self) -> None:
        """Forget files gone for good (the container was removed) once read to their end."""
        now = self._clock()
        for key in list(self._followers):
            if os.path.exists(key):
                self._missing_since.pop(key, None)
                continue
            # Gone for a moment during each kubelet rotation (rename, then the runtime
            # reopens): only a long absence means the container's logs were removed.
            since = self._missing_since.setdefault(key, now)
            if now - since >= self.retire_after:
                log.info("%s is gone; forgetting it", key)
                self._followers.pop(key).close()
                self._missing_since.pop(key)
                checkpoint = self._checkpoint(key)
                for stale in (checkpoint.path, checkpoint.tmp):
                    stale.unlink(missing_ok=True)

    def _checkpoint(self, real: str) -> Checkpoint:
        digest = hashlib.sha256(real.encode()).hexdigest()[:16]
        return Checkpoint(self.checkpoint_dir / f"{Path(real).name}.{digest}.json")
