"""Reading files: JSON lines, gzip (by content), stdin, whole documents, arrays, huge lines."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest

from kubetrail.errors import SourceError
from kubetrail.model import decode_records, load_events
from kubetrail.model.decode import TruncatedRecord
from kubetrail.sources import files
from kubetrail.sources.files import iter_records
from testdata import EVENTLIST_FILE, EVENTS, read_json_lines

SAMPLE = EVENTS / "audit2rbac-demo-v1.jsonl"


def test_json_lines_keep_their_line_numbers(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = SAMPLE.read_bytes().splitlines()
    path.write_bytes(lines[0] + b"\n\n  \n" + lines[1] + b"\r\n")
    assert [(n, r) for n, r in iter_records(path)] == [(1, lines[0]), (4, lines[1])]


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "rotated-audit.log"
    path.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert len(list(load_events(path))) == len(read_json_lines(SAMPLE))


def test_stdin(monkeypatch):
    stream = io.BufferedReader(io.BytesIO(SAMPLE.read_bytes()))  # type: ignore[arg-type]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
    records = list(iter_records("-"))
    assert len(records) == len(read_json_lines(SAMPLE))
    assert files.source_name("-") == "<stdin>"


def test_pretty_printed_eventlist_document(tmp_path):
    doc = read_json_lines(EVENTLIST_FILE)[0]
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(doc, indent=2))
    [(line, record)] = list(iter_records(path))
    assert line is None
    chunk = decode_records([(line, record)], str(path))
    assert len(chunk.heads) == len(doc["items"]) and not chunk.rejections


def test_json_array_of_events(tmp_path):
    events = read_json_lines(SAMPLE)[:3]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events, indent=1))
    assert [json.loads(r) for _, r in iter_records(path)] == events
    path.write_text(json.dumps(events))
    assert [json.loads(r) for _, r in iter_records(path)] == events


def test_broken_first_line_is_one_bad_record_not_a_lost_file(tmp_path):
    lines = SAMPLE.read_bytes().splitlines()
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines[0][:50] + b"\n" + b"\n".join(lines[1:4]) + b"\n")
    chunk = decode_records(iter_records(path), str(path))
    assert [r.line for r in chunk.rejections] == [1]
    assert len(chunk.heads) == 3


def test_overlong_line_is_skipped_without_holding_it(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 1000)
    lines = SAMPLE.read_bytes().splitlines()
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines[0] + b"\n" + b'{"x":"' + b"y" * 5000 + b'"}\n' + lines[1] + b"\n")
    records = list(iter_records(path))
    assert [n for n, _ in records] == [1, 2, 3]
    assert isinstance(records[1][1], TruncatedRecord) and records[1][1].size == 5009
    chunk = decode_records(records, str(path))
    assert [r.reason for r in chunk.rejections] == ["record too large"]


def test_missing_file_and_bad_gzip_raise_source_error(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        list(iter_records(tmp_path / "nope.jsonl"))
    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(SourceError, match="cannot read"):
        list(iter_records(path))
