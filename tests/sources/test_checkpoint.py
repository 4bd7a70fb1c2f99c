"""The checkpoint file: versioned, atomic, read back preferring the tmp file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetrail.errors import SourceError
from kubetrail.sources.checkpoint import Checkpoint, Position, fingerprint

POS = Position("/var/log/audit.log", 64769, 1234, 5000, fingerprint(b"abc"), 3)


def test_round_trip_and_version(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path / "state" / "ckpt.json")
    assert ckpt.load() is None
    ckpt.save(POS)
    assert ckpt.load() == POS
    assert json.loads(ckpt.path.read_text())["version"] == 1
    assert not ckpt.tmp.exists()


def test_prefers_a_complete_tmp_file_and_ignores_a_torn_one(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path / "ckpt.json")
    ckpt.save(POS)
    newer = Position(POS.path, POS.device, POS.inode, 9000, POS.fingerprint, 3)
    ckpt.tmp.write_text(json.dumps({"version": 1, **newer.__dict__}))
    assert ckpt.load() == newer  # crash after the tmp fsync, before os.replace
    ckpt.tmp.write_text('{"version": 1, "pa')
    assert ckpt.load() == POS  # crash while writing the tmp file


@pytest.mark.parametrize("text", ['{"version": 2}', '{"version": 1, "path": "x"}', "[]", "nope"])
def test_bad_checkpoint_is_an_error(tmp_path: Path, text: str) -> None:
    ckpt = Checkpoint(tmp_path / "ckpt.json")
    ckpt.path.write_text(text)
    with pytest.raises(SourceError):
        ckpt.load()
