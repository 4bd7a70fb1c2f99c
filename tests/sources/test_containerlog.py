"""Unwrapping CRI and Docker json-file container logs into audit events."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from containerlogs import NOT_AUDIT, Wrapper, interleaved
from kubetrail.model.decode import TruncatedRecord, decode_records
from kubetrail.sources.containerlog import (
    Unwrapper,
    UnwrapStats,
    detect_format,
    looks_like_audit,
)
from kubetrail.sources.files import iter_records
from testdata import EVENT_FILES

EVENTS = [line for p in EVENT_FILES for line in p.read_bytes().splitlines() if line.strip()]


def test_detects_each_format_from_the_first_record() -> None:
    assert detect_format(Wrapper("cri").records(EVENTS[0])[0]) == "cri"
    assert detect_format(b"\n\n" + Wrapper("docker").records(EVENTS[0])[0]) == "docker"
    assert detect_format(b"2026-01-01T00:00:00.1Z stderr F I1123 12:00:00 x.go:1] hi\n") == "cri"
    assert detect_format(EVENTS[0]) == "jsonl"
    assert detect_format(b"") == "jsonl"
    assert detect_format(b"2026-01-01 not a container log") == "jsonl"
    assert detect_format(NOT_AUDIT[0]) == "text"  # `kubectl logs`: no wrapper, klog first
    assert detect_format(NOT_AUDIT[3]) == "text"


def test_audit_events_are_told_from_the_api_servers_own_lines() -> None:
    assert all(looks_like_audit(e) for e in EVENTS)
    assert not any(looks_like_audit(line) for line in NOT_AUDIT)
    assert looks_like_audit(b'{"kind": "Event", "oops"')  # malformed, but meant as an event
    # a JSON-format log line quoting an event in its message is not one
    assert not looks_like_audit(b'{"ts":1,"msg":"sent {\\"auditID\\":\\"x\\"}","v":2}')


@pytest.mark.parametrize("fmt", ["cri", "docker"])
def test_an_event_over_16_kib_is_joined_from_the_runtimes_records(fmt: str) -> None:
    event = json.loads(EVENTS[0])
    event.setdefault("annotations", {})["example.com/large"] = "x" * 40_000
    line = json.dumps(event, separators=(",", ":")).encode()
    records = Wrapper(fmt).records(line)  # the runtimes' default: 16 KiB per record
    assert len(records) == 3
    unwrapper: Unwrapper[int] = Unwrapper(fmt)
    out = [m for i, r in enumerate(records, 1) for m in unwrapper.feed(r, i)]
    assert out == [(1, line)]


@pytest.mark.parametrize("fmt", ["cri", "docker"])
@pytest.mark.parametrize("split", [64, 16 * 1024])
def test_every_event_comes_back_whole_and_only_once(fmt: str, split: int) -> None:
    records, noise = interleaved(Wrapper(fmt, split), EVENTS)
    unwrapper: Unwrapper[int] = Unwrapper(fmt)
    out = []
    for line_no, record in enumerate(records, 1):
        out.extend(unwrapper.feed(record, line_no))
    out.extend(unwrapper.flush())
    assert [message for _, message in out] == EVENTS
    assert unwrapper.not_audit == noise > 0
    # each event is known by the line of the record where it started
    starts = [line for line, _ in out]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for event, (line, _) in zip(EVENTS, out, strict=True):
        record = records[line - 1]
        first = json.loads(record)["log"].encode() if fmt == "docker" else record.split(b" ", 3)[3]
        first = first.rstrip(b"\n")
        assert event.startswith(first)


def test_cri_tags_beyond_the_first_are_ignored_and_an_empty_line_is_nothing() -> None:
    unwrapper: Unwrapper[int] = Unwrapper("cri")
    event = EVENTS[0]
    assert unwrapper.feed(b"2026-01-01T00:00:00.000000001Z stdout P:x " + event[:30], 1) == []
    assert unwrapper.feed(b"2026-01-01T00:00:00.000000002Z stdout F:x " + event[30:], 2) == [
        (1, event)
    ]
    assert unwrapper.feed(b"2026-01-01T00:00:00.000000003Z stdout F", 3) == []
    assert unwrapper.not_audit == 0


def test_a_line_that_is_not_a_record_stands_alone() -> None:
    unwrapper: Unwrapper[int] = Unwrapper("cri")
    assert unwrapper.feed(EVENTS[0], 1) == [(1, EVENTS[0])]
    assert unwrapper.feed(b"garbage", 2) == []
    assert unwrapper.not_audit == 1


def test_a_joined_line_over_the_limit_is_refused_as_too_large() -> None:
    wrapper = Wrapper("cri", split=100)
    unwrapper: Unwrapper[int] = Unwrapper("cri", max_bytes=300)
    big = EVENTS[0] + b" " * 1000
    out = [m for r in wrapper.records(big) for m in unwrapper.feed(r, 7)]
    assert len(out) == 1 and isinstance(out[0][1], TruncatedRecord)
    chunk = decode_records([out[0]], "f")
    assert chunk.rejections[0].reason == "record too large" and chunk.rejections[0].line == 7


def test_malformed_events_are_refused_with_the_line_where_they_started(tmp_path: Path) -> None:
    wrapper = Wrapper("docker", split=50)
    bad = EVENTS[1][:-40]  # cut short: looks like an event, is not JSON
    records = (
        wrapper.records(NOT_AUDIT[0], "stderr")
        + wrapper.records(EVENTS[0])
        + wrapper.records(bad)
        + wrapper.records(EVENTS[2])
    )
    path = tmp_path / "kube-apiserver.log.gz"
    path.write_bytes(gzip.compress(b"\n".join(records) + b"\n"))
    stats = UnwrapStats()
    chunk = decode_records(iter_records(path, "auto", stats), str(path))
    assert len(chunk.heads) == 2 and stats.not_audit == 1
    (rejection,) = chunk.rejections
    first_of_bad = 1 + len(wrapper.records(NOT_AUDIT[0])) + len(wrapper.records(EVENTS[0]))
    assert rejection.reason == "invalid JSON" and rejection.line == first_of_bad
    assert json.loads(records[first_of_bad - 1])["log"] == bad[:50].decode()


def test_a_line_still_open_at_the_end_of_the_file_is_handed_on(tmp_path: Path) -> None:
    records = Wrapper("cri", split=40).records(EVENTS[0])[:-1]  # the F record never came
    path = tmp_path / "0.log"
    path.write_bytes(b"\n".join(records) + b"\n")
    chunk = decode_records(iter_records(path, "cri"), str(path))
    assert chunk.heads == [] and chunk.rejections[0].line == 1
