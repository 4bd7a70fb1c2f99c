"""Following a rotating audit log: rename, gzip and copy-truncate rotation, restarts."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from kubetrail.demo import generate_events
from kubetrail.sources.checkpoint import Checkpoint
from kubetrail.sources.tail import LogFollower, follow


class AuditLog:
    """Writes audit lines the way kube-apiserver's log backend (lumberjack) does."""

    def __init__(self, directory: Path, events: int = 2000) -> None:
        self.path = directory / "audit.log"
        self._lines: Iterator[bytes] = iter(
            list(generate_events(events, seed=5, end=datetime(2026, 1, 1)))
        )
        self.written: list[bytes] = []
        self._rotations = 0

    def write(self, n: int) -> None:
        with open(self.path, "ab") as handle:
            for _ in range(n):
                line = next(self._lines)
                handle.write(line + b"\n")
                self.written.append(line)

    def backup_name(self) -> Path:
        self._rotations += 1
        stamp = f"2026-01-01T00-00-{self._rotations:02d}.000"
        return self.path.with_name(f"audit-{stamp}.log")

    def rotate(self, compress: bool = False) -> Path:
        backup = self.backup_name()
        os.rename(self.path, backup)
        self.path.touch()
        if compress:
            return self.compress(backup)
        return backup

    @staticmethod
    def compress(backup: Path) -> Path:
        target = backup.with_name(backup.name + ".gz")
        with open(backup, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        backup.unlink()
        return target

    def copytruncate(self) -> None:
        shutil.copyfile(self.path, self.path.with_name("audit.log.1"))
        os.truncate(self.path, 0)


def drain(follower: LogFollower, limit: int = 100) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(limit):  # bounded
        batch = follower.next_batch()
        if batch is None:
            return out
        out += [line for _, line in batch.records]
        follower.commit(batch)
    raise AssertionError("the follower did not settle")


def make(log: AuditLog, tmp_path: Path, lines: int = 50) -> LogFollower:
    return LogFollower(log.path, Checkpoint(tmp_path / "ckpt.json"), batch_lines=lines)


def test_reads_complete_lines_only(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    follower = make(log, tmp_path)
    assert drain(follower) == []  # no file yet
    log.write(120)
    with open(log.path, "ab") as handle:
        handle.write(b'{"kind":"Event","partial')
    assert drain(follower) == log.written
    with open(log.path, "ab") as handle:
        handle.write(b'":1}\n')
    assert drain(follower) == [b'{"kind":"Event","partial":1}']
    follower.close()


def test_rename_rotation_while_following(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    follower = make(log, tmp_path)
    log.write(30)
    got = drain(follower)
    log.write(20)
    log.rotate()
    log.write(25)
    log.rotate(compress=True)
    log.write(5)
    got += drain(follower)
    assert got == log.written
    follower.close()


def test_restart_across_rotations_and_gzip(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    follower = make(log, tmp_path, lines=7)
    log.write(40)
    got = drain(follower)
    follower.close()
    # While the collector is down: more lines, a rotation gzipped later, another rotation.
    log.write(11)
    first = log.rotate()
    log.write(9)
    log.rotate()
    log.write(4)
    AuditLog.compress(first)
    follower = make(log, tmp_path, lines=7)
    got += drain(follower)
    assert got == log.written
    follower.close()


def test_restart_from_the_middle_of_a_gzipped_backup(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    follower = make(log, tmp_path, lines=10)
    log.write(35)
    batch = follower.next_batch()
    assert batch is not None
    follower.commit(batch)  # acknowledged 10 of 35, then killed
    follower.close()
    log.rotate(compress=True)
    log.write(3)
    follower = make(log, tmp_path, lines=10)
    rest = drain(follower)
    assert [line for _, line in batch.records] + rest == log.written
    follower.close()


def test_copy_truncate_while_following_and_while_down(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    follower = make(log, tmp_path)
    log.write(30)
    got = drain(follower)
    log.write(12)
    log.copytruncate()
    log.write(6)
    got += drain(follower)
    assert got == log.written
    follower.close()
    log.write(8)
    shutil.copyfile(log.path, log.path.with_name("audit.log.2"))  # older copy is .2 now
    os.rename(log.path.with_name("audit.log.1"), log.path.with_name("audit.log.3"))
    os.rename(log.path.with_name("audit.log.2"), log.path.with_name("audit.log.1"))
    os.truncate(log.path, 0)
    log.write(3)
    follower = make(log, tmp_path)
    got += drain(follower)
    assert got == log.written
    follower.close()


def test_unacknowledged_batch_is_read_again_after_restart(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.write(25)
    follower = make(log, tmp_path, lines=10)
    first = follower.next_batch()
    assert first is not None
    follower.commit(first)
    assert follower.next_batch() is not None  # read, never acknowledged: the process dies
    follower.close()
    follower = make(log, tmp_path, lines=10)
    again = drain(follower)
    assert [line for _, line in first.records] + again == log.written
    follower.close()


def test_follow_ships_until_stopped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.write(45)
    follower = make(log, tmp_path, lines=20)
    shipped: list[bytes] = []
    polls = iter(range(3))

    def stop() -> bool:
        return len(shipped) >= 45 and next(polls, None) is None

    n = follow(
        follower, lambda b: shipped.extend(x for _, x in b.records), stop, sleep=lambda s: None
    )
    assert n == 45 and shipped == log.written
    follower.close()
