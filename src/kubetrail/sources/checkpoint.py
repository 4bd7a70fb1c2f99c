"""The position of ``kubetrail collect`` in the audit log, kept in a small versioned file.

A position names a file by its device and inode (which survive a rename), and a fingerprint,
the SHA-256 of its first bytes (which survives gzip and copy-truncate's copy, and tells a reused
inode apart), plus the offset of the first byte not yet acknowledged.

The file is written tmp → flush + fsync → ``os.replace`` → fsync of the directory, and read
back preferring the tmp file. Crash windows:

* before the tmp file is complete: the stable file still holds the previous position; the
  batch since then is sent again and the store skips it as duplicates;
* after the tmp fsync, before ``os.replace``: load prefers the complete tmp file;
* after ``os.replace``, before the directory fsync: either name holds a full position.

A position is saved only after the batch before it was acknowledged (committed), so a kill
at any moment loses nothing: at worst the last batch is sent twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SourceError

VERSION = 1
#: Bytes of a file's head that identify it.
FINGERPRINT_BYTES = 1024


@dataclass(frozen=True)
class Position:
    """Where reading continues.

    Attributes:
        path: the path the file had when it was opened (informational).
        device: ``st_dev`` of the file.
        inode: ``st_ino`` of the file.
        offset: bytes of the (decompressed) file already acknowledged.
        fingerprint: hex SHA-256 of the first ``fingerprint_len`` bytes.
        fingerprint_len: how many bytes the fingerprint covers (at most
            :data:`FINGERPRINT_BYTES`; fewer while the file is shorter).
    """

    path: str
    device: int
    inode: int
    offset: int
    fingerprint: str
    fingerprint_len: int


def fingerprint(head: bytes) -> str:
    """The fingerprint of a file's first bytes."""
    return hashlib.sha256(head[:FINGERPRINT_BYTES]).hexdigest()


class Checkpoint:
    """Loads and saves a :class:`Position` at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")

    def load(self) -> Position | None:
        """The saved position, or ``None`` if there is none.

        Raises:
            SourceError: the file exists but is not a position of a known version.
        """
        for candidate in (self.tmp, self.path):
            try:
                text = candidate.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise SourceError(f"{candidate}: cannot read the checkpoint: {exc}") from exc
            try:
                data = json.loads(text)
            except ValueError:
                if candidate == self.tmp:
                    continue  # a torn tmp file: the crash came before its fsync
                raise SourceError(f"{candidate}: the checkpoint is not JSON") from None
            return _position(data, candidate)
        return None

    def save(self, position: Position) -> None:
        """Persist ``position`` atomically (see the module docstring for the crash windows)."""
        data = json.dumps({"version": VERSION, **asdict(position)}, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.tmp, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _position(data: object, where: Path) -> Position:
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise SourceError(f"{where}: unknown checkpoint version (this kubetrail reads {VERSION})")
    try:
        return Position(
            path=str(data["path"]),
            device=int(data["device"]),
            inode=int(data["inode"]),
            offset=int(data["offset"]),
            fingerprint=str(data["fingerprint"]),
            fingerprint_len=int(data["fingerprint_len"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{where}: the checkpoint is incomplete: {exc}") from exc
