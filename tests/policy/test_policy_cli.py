"""``kubetrail policy`` commands through click's CliRunner (exit codes and output shapes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubetrail.cli.policy import policy
from kubetrail.pipeline import ingest_paths
from kubetrail.store import open_store

TESTS = Path(__file__).parent.parent
POL = TESTS / "data" / "policies"
EVENTS = TESTS / "data" / "events"
FALCO = str(EVENTS / "falco-k8s-audit-traces.jsonl")
A2R = str(EVENTS / "audit2rbac-demo-v1.jsonl")
AKS = str(EVENTS / "sysdiglabs-aks-audit-log-samples.jsonl")  # no duplicates: the store keeps all
GKE = str(POL / "gke-gce-configure-helper.yaml")
DOCS = str(POL / "k8s-docs-example-audit-policy.yaml")


def run(*args: str) -> Any:
    return CliRunner().invoke(policy, list(args))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("cli") / "kt.duckdb")
    store = open_store(path)
    ingest_paths(store, [A2R, AKS])
    store.close()
    return path


def test_lint_exit_codes(tmp_path: Path) -> None:
    assert run("lint", GKE).exit_code == 0
    assert run("lint", str(POL / "eks-anywhere-audit-policy-v1beta1.yaml")).exit_code == 0
    res = run("lint", str(POL / "openshift-writerequestbodies.yaml"))
    assert res.exit_code == 1 and 'unknown field "rules[2].resources[4].resource"' in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
        "rules:\n- level: None\n  nonResourceURLs: [healthz]\n"
    )
    res = run("lint", str(bad))
    assert res.exit_code == 1
    assert (
        'rules[0].nonResourceURLs[0]: Invalid value: "healthz": '
        "non-resource URL rules must begin with a '/' character" in res.output
    )
    assert run("lint", str(tmp_path / "missing.yaml")).exit_code == 2


def test_lint_json() -> None:
    res = run("lint", str(POL / "openshift-allrequestbodies.yaml"), "--format", "json")
    data = json.loads(res.output)
    assert res.exit_code == 1 and data["ok"] is False
    assert data["errors"][0]["path"] == "rules[2].resources[4].resource"
    assert {"severity", "code", "path", "message"} <= set(data["warnings"][0])


def test_simulate_text_and_json() -> None:
    res = run("simulate", GKE, "--events", FALCO, "--events", A2R)
    assert res.exit_code == 0, res.output
    assert "before" in res.output and "after" in res.output and "rules never hit" in res.output
    data = json.loads(run("simulate", GKE, "--events", FALCO, "--format", "json").output)
    assert data["before"]["events"] == 17
    assert [r["rule"] for r in data["rules"]] == [*range(17), None]


def test_simulate_per_event_json() -> None:
    res = run("simulate", DOCS, "--events", FALCO, "--per-event", "--format", "json")
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert res.exit_code == 0 and len(lines) == 17
    for row in lines:
        assert list(row) == ["auditID", "stage", "level", "rule", "kept"]
        assert row["rule"] is None or isinstance(row["rule"], int)


def test_bad_since_is_usage_error(db: str) -> None:
    assert run("simulate", GKE, "--db", db, "--since", "yesterday").exit_code == 2


def test_simulate_db_matches_events(db: str) -> None:
    by_db = json.loads(run("simulate", GKE, "--db", db, "--format", "json").output)
    by_files = json.loads(
        run("simulate", GKE, "--events", A2R, "--events", AKS, "--format", "json").output
    )
    assert by_db["by_level"] == by_files["by_level"]
    assert by_db["after"]["events"] == by_files["after"]["events"]
    per = run("simulate", GKE, "--db", db, "--per-event", "--format", "json", "--since", "100000d")
    assert len(per.output.splitlines()) == 62


def test_usage_errors() -> None:
    assert run("simulate", GKE).exit_code == 2
    assert run("simulate", GKE, "--events", FALCO, "--db", FALCO).exit_code == 2
    assert run("simulate", GKE, "--events", FALCO, "--format", "xml").exit_code == 2
    assert run("explain", GKE).exit_code == 2
    assert run("explain", GKE, FALCO, "--audit-id", "x").exit_code == 2
    assert run("simulate", GKE, "--events", FALCO, "--since", "1h").exit_code == 2


def test_refused_policy_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")
    res = run("simulate", str(bad), "--events", FALCO)
    assert res.exit_code == 1 and "loaded illegal policy with 0 rules" in res.output


def test_explain_file_and_db(db: str, tmp_path: Path) -> None:
    first = Path(AKS).read_text().splitlines()[3]
    one = tmp_path / "one.jsonl"
    one.write_text(first + "\n")
    res = run("explain", DOCS, str(one))
    assert res.exit_code == 0 and "=> level" in res.output
    data = json.loads(run("explain", DOCS, str(one), "--format", "json").output)
    steps = data[0]["steps"]
    assert steps[-1]["matched"] or data[0]["decision"]["rule"] is None
    assert all(s["failed"] for s in steps[:-1])
    audit_id = json.loads(first)["auditID"]
    by_db = json.loads(
        run("explain", DOCS, "--audit-id", audit_id, "--db", db, "--format", "json").output
    )
    assert by_db[0]["decision"] == data[0]["decision"]
    assert run("explain", DOCS, "--audit-id", "nope", "--db", db).exit_code == 1


def test_diff(db: str) -> None:
    res = run("diff", DOCS, GKE, "--events", FALCO)
    assert res.exit_code == 0 and "events change outcome" in res.output
    a = json.loads(
        run("diff", DOCS, GKE, "--events", A2R, "--events", AKS, "--format", "json").output
    )
    b = json.loads(run("diff", DOCS, GKE, "--db", db, "--format", "json").output)
    assert a == b


def test_generate(tmp_path: Path) -> None:
    res = run("generate", "--events", FALCO, "--events", A2R)
    assert res.exit_code == 0 and res.output.startswith("# Proposed by kubetrail")
    out = tmp_path / "gen.yaml"
    out.write_text(res.output)
    assert run("lint", str(out)).exit_code == 0


def test_generate_db_equals_events(db: str) -> None:
    by_files = run("generate", "--events", A2R, "--events", AKS, "--min-share", "0.02")
    by_db = run("generate", "--db", db, "--min-share", "0.02")
    assert by_files.exit_code == by_db.exit_code == 0
    body = lambda out: out[out.index("apiVersion:") :]  # noqa: E731
    assert body(by_db.output) == body(by_files.output)
    events_line = lambda out: out.splitlines()[1].split(", bytes")[0]  # noqa: E731
    assert events_line(by_db.output) == events_line(by_files.output)
