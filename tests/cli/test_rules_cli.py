"""The rules and alerts commands, as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from kubetrail.cli import main
from testdata import EVENTS

POLICIES = EVENTS.parent / "policies"
FALCO = str(EVENTS / "falco-k8s-audit-traces.jsonl")
CROWDSEC = str(EVENTS / "crowdsec-hub-k8s-audit-tests.jsonl")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_and_validate() -> None:
    listed = run("rules", "list", "--format", "json")
    assert listed.exit_code == 0
    rules = [json.loads(line) for line in listed.output.splitlines()]
    assert len(rules) >= 40 and {"id", "severity", "tags", "kind", "enabled"} <= rules[0].keys()
    assert "k8s.pod.exec" in run("rules", "list").output
    valid = run("rules", "validate")
    assert valid.exit_code == 0 and "rules valid" in valid.output


def test_validate_names_the_bad_file_rule_and_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: acme.x\ntitle: X\nseverity: loud\nwhen: verb=get\noutput: x\n")
    result = run("rules", "validate", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: rule acme.x: severity: 'loud' is not one of" in result.output


def test_test_on_event_files_prints_alerts_as_json() -> None:
    result = run("rules", "test", "--events", FALCO, CROWDSEC, "--format", "json")
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.output.splitlines()]
    assert all({"rule", "severity", "auditIDs", "message"} <= a.keys() for a in alerts)
    by_rule = {a["rule"]: a for a in alerts}
    assert by_rule["k8s.pod.exec"]["auditIDs"] == ["57a794de-44d3-40ee-a0ad-c0eb096eef6c"]
    assert "`/bin/bash`" in by_rule["k8s.pod.exec"]["message"]
    assert "k8s.auth.anonymous_allowed" in by_rule and "k8s.secret.deleted" in by_rule
    only = run("rules", "test", "--events", CROWDSEC, "--rule", "k8s.pod.exec", "--format", "json")
    assert [json.loads(x)["rule"] for x in only.output.splitlines()] == ["k8s.pod.exec"]
    text = run("rules", "test", "--events", CROWDSEC)
    assert "k8s.pod.exec" in text.output and "alert(s)" in text.output


def test_test_usage_errors(db_path) -> None:
    assert run("rules", "test").exit_code == 2
    assert run("rules", "test", "--events", FALCO, "--db", str(db_path)).exit_code == 2
    assert run("rules", "test", "--db", str(db_path)).exit_code == 2
    assert run("rules", "test", "--events", FALCO, "--rule", "k8s.nope").exit_code == 2
    assert run("rules", "test", "--events", "/nonexistent.jsonl").exit_code == 2


def test_test_and_backtest_on_a_store(tmp_path, db_path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    lines = []
    for i in range(3):
        t = (now - timedelta(days=i, minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        lines.append(
            json.dumps(
                {
                    "kind": "Event",
                    "apiVersion": "audit.k8s.io/v1",
                    "level": "Metadata",
                    "auditID": f"exec-{i}",
                    "stage": "ResponseComplete",
                    "verb": "create",
                    "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=id&stdout=true",
                    "user": {"username": "alice@example.com", "groups": ["system:authenticated"]},
                    "sourceIPs": ["203.0.113.9"],
                    "userAgent": "kubectl/v1.30.0",
                    "objectRef": {
                        "resource": "pods",
                        "namespace": "shop",
                        "name": "web",
                        "subresource": "exec",
                        "apiVersion": "v1",
                    },
                    "responseStatus": {"code": 101},
                    "requestReceivedTimestamp": t,
                    "stageTimestamp": t,
                }
            )
        )
    path = tmp_path / "exec.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert run("ingest", str(path), "--db", str(db_path), "--cluster", "prod").exit_code == 0
    tested = run("rules", "test", "--db", str(db_path), "--since", "2d", "--format", "json")
    alerts = [json.loads(x) for x in tested.output.splitlines()]
    assert sorted(a["auditIDs"][0] for a in alerts if a["rule"] == "k8s.pod.exec") == [
        "exec-0",
        "exec-1",
    ]
    back = run("rules", "backtest", "--db", str(db_path), "--since", "30d", "--format", "json")
    assert back.exit_code == 0
    rows = {r["rule"]: r for r in map(json.loads, back.output.splitlines())}
    assert rows["k8s.pod.exec"]["alerts"] == 3 and len(rows["k8s.pod.exec"]["days"]) == 3
    table = run("rules", "backtest", "--db", str(db_path), "--since", "30d")
    assert "k8s.pod.exec" in table.output


def test_check_warns_about_blind_rules() -> None:
    gke = run("rules", "check", "--policy", str(POLICIES / "gke-gce-configure-helper.yaml"))
    assert gke.exit_code == 0
    assert "warning: k8s.events.deleted: delete events in default" in gke.output
    assert "level None" in gke.output
    as_json = run(
        "rules",
        "check",
        "--policy",
        str(POLICIES / "k8s-docs-example-audit-policy.yaml"),
        "--format",
        "json",
    )
    warnings = [json.loads(x) for x in as_json.output.splitlines()]
    assert any(w["rule"] == "k8s.pod.privileged" and w["level"] == "Metadata" for w in warnings)


def test_ingest_detect_then_alerts(db_path) -> None:
    result = run("ingest", CROWDSEC, "--db", str(db_path), "--detect")
    assert result.exit_code == 0, result.output
    listed = run("alerts", "--db", str(db_path), "--format", "json")
    alerts = [json.loads(x) for x in listed.output.splitlines()]
    assert {"k8s.pod.exec", "k8s.pod.privileged"} <= {a["rule"] for a in alerts}
    assert all(a["status"] == "open" and a["auditIDs"] for a in alerts)
    text = run("alerts", "--db", str(db_path))
    assert "k8s.pod.exec" in text.output and "alert(s)" in text.output
    recent = run("alerts", "--db", str(db_path), "--since", "1h", "--format", "json")
    assert recent.output == ""  # the events are from 2023
    assert run("alerts", "--db", str(db_path), "--since", "soon").exit_code == 2
