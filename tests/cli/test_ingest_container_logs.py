"""``kubetrail ingest`` and ``kubetrail collect --db`` on the API server's container log."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from containerlogs import NOT_AUDIT, PodLogs, Wrapper, interleaved
from kubetrail.cli import main
from kubetrail.store import open_store
from testdata import EVENT_FILES

EVENTS = [line for p in EVENT_FILES for line in p.read_bytes().splitlines() if line.strip()]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _keys(lines: list[bytes]) -> set[tuple[str, str]]:
    return {(e["auditID"], e["stage"]) for e in map(json.loads, lines)}


def test_ingest_cri_and_docker_logs_stores_each_event_and_counts_the_rest(
    db_path: Path, tmp_path: Path
) -> None:
    half = len(EVENTS) // 2
    cri, cri_noise = interleaved(Wrapper("cri", split=256), EVENTS[:half])
    docker, docker_noise = interleaved(Wrapper("docker", split=256), EVENTS[half:])
    (tmp_path / "0.log").write_bytes(b"\n".join(cri) + b"\n")
    (tmp_path / "1.log.gz").write_bytes(gzip.compress(b"\n".join(docker) + b"\n"))
    result = run(
        "ingest", str(tmp_path / "0.log"), str(tmp_path / "1.log.gz"),
        "--db", str(db_path), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["not_audit"] == cri_noise + docker_noise > 0
    assert summary["rejected"] == 0 and summary["read"] == len(EVENTS)
    exported = run("export", "--db", str(db_path)).output.encode().splitlines()
    assert _keys(exported) == _keys(EVENTS)


def test_malformed_event_in_a_container_log_is_refused_with_its_line(
    db_path: Path, tmp_path: Path
) -> None:
    wrapper = Wrapper("cri", split=100)
    records = [
        *wrapper.records(NOT_AUDIT[1], "stderr"),
        *wrapper.records(EVENTS[0]),
        *wrapper.records(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":'),
    ]
    path = tmp_path / "kube-apiserver.log"
    path.write_bytes(b"\n".join(records) + b"\n")
    result = run("ingest", str(path), "--db", str(db_path))
    assert result.exit_code == 1
    assert "skipped (not audit events): 1 container log lines" in result.output
    (line,) = (db_path.parent / (db_path.name + ".quarantine.jsonl")).read_text().splitlines()
    assert json.loads(line)["line"] == len(records)  # the last record, where that event began


def test_a_forced_format_that_does_not_match_stores_nothing_wrongly(
    db_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"\n".join(Wrapper("cri").records(e)[0] for e in EVENTS[:5]) + b"\n")
    result = run(
        "ingest", str(path), "--format-in", "docker", "--db", str(db_path), "--format", "json"
    )
    summary = json.loads(result.output)
    assert (summary["read"], summary["not_audit"]) == (0, 5)
    plain = tmp_path / "audit.log"
    plain.write_bytes(b"\n".join(EVENTS[:5]) + b"\n")
    result = run(
        "ingest", str(plain), "--format-in", "jsonl", "--db", str(db_path), "--format", "json"
    )
    assert json.loads(result.output)["stored"] == 5


def test_collect_a_glob_of_container_logs_into_a_local_store(tmp_path: Path) -> None:
    logs = PodLogs(tmp_path, Wrapper("cri", split=500), EVENTS)
    logs.write(60)
    logs.rotate()
    logs.write(40)
    logs.restart()
    logs.write(30)
    db = tmp_path / "collected.duckdb"
    args = ["collect", "--file", logs.glob, "--db", str(db), "--once"]
    args += ["--checkpoint", str(tmp_path / "ckpt.json")]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "ckpt.json.d").is_dir()
    logs.write(20)
    second = run(*args)
    assert "skipped" in second.output
    with open_store(db, read_only=True) as store:
        # a first start reads the live files: the 60 events rotated away before are not read
        assert store.count() == len(_keys(logs.written[60:]))


def test_kubectl_logs_output_on_stdin_is_sorted_into_events_and_other_lines(db_path: Path) -> None:
    # `kubectl logs -n kube-system kube-apiserver-…` prints the messages, unwrapped, with
    # stdout and stderr merged: the API server's start-up lines come first.
    lines = [NOT_AUDIT[3], NOT_AUDIT[0], *EVENTS[:10], NOT_AUDIT[1], *EVENTS[10:20], NOT_AUDIT[4]]
    result = CliRunner().invoke(
        main,
        ["ingest", "-", "--db", str(db_path), "--format", "json"],
        input=b"\n".join(lines) + b"\n",
        catch_exceptions=False,
    )
    summary = json.loads(result.output)
    assert (summary["stored"], summary["not_audit"], summary["rejected"]) == (20, 4, 0)
