"""The ingest, export, stats and report commands, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kubetrail.cli import main
from testdata import EDGE_FILES, EVENT_FILES, PARTIAL_FILES, read_json_lines


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_ingest_every_real_file_then_export_gives_the_same_keys(db_path):
    result = run("ingest", *map(str, EVENT_FILES), "--db", str(db_path), "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {"read", "stored", "duplicates", "rejected", "quarantine"} <= summary.keys()
    assert summary["rejected"] == 0 and summary["quarantine"] is None
    assert summary["read"] == summary["stored"] + summary["duplicates"]
    exported = run("export", "--db", str(db_path))
    assert exported.exit_code == 0
    keys = {(e["auditID"], e["stage"]) for e in map(json.loads, exported.output.splitlines())}
    originals = {(e["auditID"], e["stage"]) for p in EVENT_FILES for e in read_json_lines(p)}
    assert keys == originals


def test_bad_records_exit_1_and_land_in_quarantine_while_good_ones_are_stored(db_path, tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    good = EVENT_FILES[0].read_text().splitlines()[:3]
    bad = PARTIAL_FILES[0].read_text().splitlines()[:2]
    mixed.write_text("\n".join([good[0], bad[0], good[1], "{oops", bad[1], good[2]]) + "\n")
    result = run("ingest", str(mixed), "--db", str(db_path), "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert (summary["read"], summary["stored"], summary["rejected"]) == (6, 3, 3)
    with open(summary["quarantine"]) as handle:
        quarantined = [json.loads(x) for x in handle]
    assert [q["line"] for q in quarantined] == [2, 4, 5]
    assert all(q["source"] == str(mixed) and q["reason"] for q in quarantined)
    assert quarantined[1]["record"] == "{oops"


def test_all_partial_and_edge_files_are_refused_with_reasons(db_path):
    paths = [str(p) for p in PARTIAL_FILES + EDGE_FILES]
    result = run("ingest", *paths, "--db", str(db_path))
    assert result.exit_code == 1
    assert "stored 0" in result.output and "missing required field 'apiVersion'" in result.output


def test_stdin_and_cluster(db_path):
    data = EVENT_FILES[0].read_bytes()
    result = run("ingest", "-", "--cluster", "prod", "--db", str(db_path), input=data)
    assert result.exit_code == 0
    stats = json.loads(run("stats", "--db", str(db_path), "--format", "json").output)
    assert stats["by_cluster"] == {"prod": len(read_json_lines(EVENT_FILES[0]))}
    assert stats["first"] <= stats["last"]
    assert run("export", "--db", str(db_path), "--cluster", "other").output == ""


@pytest.mark.parametrize(
    "args",
    [
        ["ingest"],
        ["ingest", "does-not-exist.jsonl"],
        ["ingest", "x", "--format", "xml"],
        ["stats", "--format", "yaml"],
    ],
)
def test_usage_errors_exit_2(args, db_path):
    result = CliRunner().invoke(main, [*args, "--db", str(db_path)])
    assert result.exit_code == 2


def test_reading_a_missing_store_is_an_error_not_a_traceback(tmp_path):
    result = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1
    assert "cannot open" in result.output and "Traceback" not in result.output


def test_report_counts_requests_and_denials(db_path):
    run("ingest", *map(str, EVENT_FILES), "--db", str(db_path))
    result = run("report", "--db", str(db_path), "--format", "json")
    report = json.loads(result.output)
    finals = {}
    for path in EVENT_FILES:
        for e in read_json_lines(path):
            if e["stage"] in ("ResponseComplete", "Panic"):
                when = e.get("requestReceivedTimestamp") or e.get("timestamp")
                finals.setdefault((e["auditID"], e["stage"], when), e)
    assert report["requests"] == len(finals)
    verbs: dict[str, int] = {}
    for e in finals.values():
        verbs[e["verb"]] = verbs.get(e["verb"], 0) + 1
    assert report["by_verb"] == dict(sorted(verbs.items(), key=lambda kv: (-kv[1], kv[0])))
    text = run("report", "--db", str(db_path))
    assert "requests by verb" in text.output and "denied" in text.output


def test_the_installed_command_runs():
    out = subprocess.run(
        [sys.executable, "-m", "kubetrail", "--help"], capture_output=True, text=True, check=True
    )
    assert "ingest" in out.stdout


def test_collector_side_policy_keeps_what_the_api_server_would_have_written(db_path, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\n"
        "kind: Policy\n"
        "omitStages: [RequestReceived]\n"
        "rules:\n"
        "- level: None\n"
        "  verbs: [get, list, watch]\n"
        "- level: Metadata\n"
    )
    paths = [str(p) for p in EVENT_FILES]
    result = run(
        "ingest", *paths, "--db", str(db_path), "--policy", str(policy), "--format", "json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    expected = {
        (e["auditID"], e["stage"], e.get("requestReceivedTimestamp") or e.get("timestamp"))
        for p in EVENT_FILES
        for e in read_json_lines(p)
        if e["verb"] not in ("get", "list", "watch") and e["stage"] != "RequestReceived"
    }
    assert summary["stored"] == len(expected)
    assert summary["read"] == (
        summary["stored"]
        + summary["duplicates"]
        + summary["rejected"]
        + summary["dropped_by_policy"]
    )
    exported = [json.loads(x) for x in run("export", "--db", str(db_path)).output.splitlines()]
    assert {e["level"] for e in exported} == {"Metadata"}
    assert not any("requestObject" in e or "responseObject" in e for e in exported)
