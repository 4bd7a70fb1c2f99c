"""Following the API server's container log: kubelet rotation, pod restarts, collector restarts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containerlogs import PodLogs, Wrapper
from kubetrail.sources.checkpoint import Checkpoint
from kubetrail.sources.containertail import ContainerLogFollower, GlobFollower
from testdata import EVENT_FILES

EVENTS = [line for p in EVENT_FILES for line in p.read_bytes().splitlines() if line.strip()]


def drain(follower: GlobFollower | ContainerLogFollower, out: list[bytes]) -> int:
    """Ship every batch there is now (committing each); return the not-audit lines skipped."""
    skipped = 0
    for _ in range(10_000):
        batch = follower.next_batch()
        if batch is None:
            return skipped
        out.extend(record for _, record in batch.records)
        skipped += batch.not_audit
        follower.commit(batch)
    raise AssertionError("the follower never ran dry")


@pytest.mark.parametrize("fmt", ["cri", "docker"])
def test_rotation_and_pod_restart_while_following(tmp_path: Path, fmt: str) -> None:
    logs = PodLogs(tmp_path, Wrapper(fmt, split=200), EVENTS)
    follower = GlobFollower(logs.glob, tmp_path / "ckpt.d", batch_lines=50)
    got: list[bytes] = []
    logs.write(100)
    skipped = drain(follower, got)
    logs.write(50)
    logs.rotate()  # 0.log -> 0.log.20260101-000001, new 0.log
    logs.write(30)
    skipped += drain(follower, got)
    logs.write(10)
    logs.rotate()  # the first backup is gzipped, the second stays plain
    logs.write(20)
    logs.restart()  # a new container: 1.log, and a new name in /var/log/containers
    logs.write(40)
    skipped += drain(follower, got)
    follower.close()
    assert got == logs.written
    assert skipped == logs.noise
    assert sorted(p.name for p in logs.dir.iterdir()) == [
        "0.log",
        "0.log.20260101-000001.gz",
        "0.log.20260101-000002",
        "1.log",
    ]
    assert [Path(f).name for f in follower.files] == ["0.log", "1.log"]
    assert len(list((tmp_path / "ckpt.d").iterdir())) == 2  # one checkpoint per real file


@pytest.mark.parametrize("fmt", ["cri", "docker"])
def test_collector_restarts_resume_each_file_from_its_checkpoint(tmp_path: Path, fmt: str) -> None:
    logs = PodLogs(tmp_path, Wrapper(fmt, split=300), EVENTS)
    got: list[bytes] = []
    logs.write(120)
    first = GlobFollower(logs.glob, tmp_path / "ckpt.d", batch_lines=40)
    batch = first.next_batch()
    assert batch is not None
    got.extend(r for _, r in batch.records)
    first.commit(batch)
    unacknowledged = first.next_batch()  # read, never acknowledged: read again after restart
    assert unacknowledged is not None and unacknowledged.records
    first.close()
    # while the collector is down: two rotations (the older backup gzipped), a pod restart
    logs.rotate()
    logs.write(30)
    logs.rotate()
    logs.restart()
    logs.write(25)
    second = GlobFollower(logs.glob, tmp_path / "ckpt.d", batch_lines=40)
    drain(second, got)
    second.close()
    # every event once (the two containers' files are read in turn, so the order differs)
    assert sorted(got) == sorted(logs.written)


@pytest.mark.parametrize("fmt", ["cri", "docker"])
@pytest.mark.parametrize("restart", [False, True])
def test_a_line_split_across_a_rotation_is_read_whole_once(
    tmp_path: Path, restart: bool, fmt: str
) -> None:
    logs = PodLogs(tmp_path, Wrapper(fmt, split=64), EVENTS)
    ckpt = tmp_path / "ckpt.d"
    follower = GlobFollower(logs.glob, ckpt)
    got: list[bytes] = []
    logs.write(5)
    event = EVENTS[-1]
    records = logs.wrapper.records(event)
    assert len(records) > 4
    logs.append(records[:3])  # P, P, P ... then the kubelet rotates
    assert drain(follower, got) >= 0 and got == logs.written
    logs.rotate()
    logs.append(records[3:])
    if restart:  # the collector was restarted while the line was open
        follower.close()
        follower = GlobFollower(logs.glob, ckpt)
    drain(follower, got)
    follower.close()
    assert got == [*logs.written, event]


def test_backups_and_dangling_links_are_not_followed_on_their_own(tmp_path: Path) -> None:
    logs = PodLogs(tmp_path, Wrapper("cri"), EVENTS)
    logs.write(3)
    logs.rotate()
    logs.write(2)
    os.symlink(tmp_path / "gone.log", logs.containers / "kube-apiserver-x_kube-system_y.log")
    pattern = str(logs.dir / "*")  # matches 0.log and its backup
    follower = GlobFollower(pattern, tmp_path / "ckpt.d")
    got: list[bytes] = []
    drain(follower, got)
    follower.close()
    # a first start begins with the live file (as for an audit log), its backup is not read
    assert got == logs.written[3:] and follower.files == [str(logs.live)]
    other = GlobFollower(logs.glob, tmp_path / "ckpt2.d")
    drain(other, [])
    other.close()
    assert other.files == [os.path.realpath(logs.live)]


def test_a_removed_container_log_is_forgotten_with_its_checkpoint(tmp_path: Path) -> None:
    now = [0.0]
    logs = PodLogs(tmp_path, Wrapper("docker"), EVENTS)
    logs.write(4)
    follower = GlobFollower(logs.glob, tmp_path / "ckpt.d", retire_after=60, clock=lambda: now[0])
    got: list[bytes] = []
    drain(follower, got)
    logs.restart()
    logs.write(3)
    drain(follower, got)
    assert got == logs.written
    os.unlink(logs.dir / "0.log")  # the kubelet removes the dead container's logs
    assert follower.next_batch() is None and len(follower.files) == 2  # a rotation looks alike
    now[0] = 61.0
    assert follower.next_batch() is None
    follower.close()
    assert [Path(f).name for f in follower.files] == ["1.log"]
    assert len(list((tmp_path / "ckpt.d").iterdir())) == 1


def test_a_plain_audit_log_passes_through_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"\n".join(EVENTS[:20]) + b"\n")
    follower = ContainerLogFollower(path, Checkpoint(tmp_path / "c.json"))
    got: list[bytes] = []
    assert drain(follower, got) == 0
    follower.close()
    assert got == EVENTS[:20] and follower.format == "jsonl"
