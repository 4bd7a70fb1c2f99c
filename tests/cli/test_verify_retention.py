"""``kubetrail verify`` and ``kubetrail retention apply`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import yaml
from click.testing import CliRunner

from kubetrail.cli import main
from kubetrail.store import open_store
from trail import PER_DAY, START, fill


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _filled(tmp_path: Path) -> Path:
    path = tmp_path / "audit.duckdb"
    with open_store(path) as store:
        fill(store, tmp_path / "in", "prod", START, 4)
        fill(store, tmp_path / "in", "dev", START, 4)
    return path


def test_verify_passes_then_fails_with_exit_1_naming_the_batch(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    ok = run("verify", "--db", str(db), "--format", "json")
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.output)
    assert body["ok"] and body["clusters"]["prod"]["events"] == 4 * PER_DAY
    dev_only = run("verify", "--db", str(db), "--cluster", "dev")
    assert dev_only.exit_code == 0 and dev_only.output.startswith("dev: 4 chain records")
    con = duckdb.connect(str(db))
    batch = con.execute("SELECT batch_id FROM chain WHERE cluster='dev' AND seq=1").fetchone()[0]
    con.execute("UPDATE events SET raw = replace(raw, 'bob', 'eve') WHERE batch_id = ?", [batch])
    con.close()
    failed = run("verify", "--db", str(db))
    assert failed.exit_code == 1
    assert f"FAIL dev seq 1 batch {batch}" in failed.output and "events_changed" in failed.output
    only_prod = run("verify", "--db", str(db), "--cluster", "prod")
    assert only_prod.exit_code == 0


def test_export_signed_digests_and_catch_a_rewritten_chain(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    digests = tmp_path / "digests"
    first = run("verify", "--db", str(db), "--export", str(digests), "--format", "json")
    assert first.exit_code == 0, first.output
    assert len(json.loads(first.output)["exported"]) == 2
    assert (tmp_path / "audit.duckdb.signing-key.pem").stat().st_mode & 0o777 == 0o600
    second = run("verify", "--db", str(db), "--export", str(digests))
    assert second.exit_code == 0
    files = sorted((digests / "prod").glob("*.json"))
    assert len(files) == 2
    latest = json.loads(files[1].read_text())
    assert latest["previous_digest_file"] == files[0].name
    assert latest["signature_algorithm"] == "Ed25519" and latest["chain_head_seq"] == 3
    assert run("verify", "--db", str(db), "--digests", str(digests)).exit_code == 0
    # Someone drops the newest batch and its chain record: the store's own chain still links,
    # but the signed digests remember the head.
    con = duckdb.connect(str(db))
    batch = con.execute("SELECT batch_id FROM chain WHERE cluster='prod' AND seq=3").fetchone()[0]
    con.execute("DELETE FROM events WHERE batch_id = ?", [batch])
    con.execute("DELETE FROM chain WHERE batch_id = ?", [batch])
    con.close()
    assert run("verify", "--db", str(db)).exit_code == 0  # undetectable from the store alone
    caught = run("verify", "--db", str(db), "--digests", str(digests))
    assert caught.exit_code == 1 and "digest_mismatch" in caught.output
    # A digest file edited by hand no longer verifies.
    latest["events"] += 1
    files[1].write_text(json.dumps(latest))
    edited = run("verify", "--db", str(db), "--digests", str(digests), "--format", "json")
    assert "signature does not verify" in edited.output
    # No digest is written for a failing store.
    con = duckdb.connect(str(db))
    con.execute(
        "DELETE FROM events WHERE cluster = 'dev' AND audit_id IN "
        "(SELECT min(audit_id) FROM events WHERE cluster = 'dev')"
    )
    con.close()
    refused = run("verify", "--db", str(db), "--export", str(tmp_path / "more"))
    assert refused.exit_code == 1 and not (tmp_path / "more").exists()


def test_retention_apply_dry_run_then_for_real(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    now = "2026-03-06T00:00:00Z"  # events on March 1..4
    args = ["retention", "apply", "--db", str(db), "--now", now, "--format", "json"]
    dry = run(*args, "--retention", "dev=2d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    (store,) = json.loads(dry.output)["stores"]
    assert [(r["cluster"], r["events"], r["estimated"]) for r in store["removed"]] == [
        ("dev", 3 * PER_DAY, True)
    ]
    assert run("verify", "--db", str(db)).exit_code == 0
    with open_store(db, read_only=True) as s:
        assert s.count("dev") == 4 * PER_DAY
    config = tmp_path / "kubetrail.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {
                    "db": str(db),
                    "retention": {"default": "3d"},
                    "clusters": [{"name": "dev", "environment": "development", "retention": "2d"}],
                }
            }
        )
    )
    real = run("retention", "apply", "--config", str(config), "--now", now, "--format", "json")
    removed = {r["cluster"]: r for r in json.loads(real.output)["stores"][0]["removed"]}
    assert removed["dev"]["events"] == 3 * PER_DAY and removed["prod"]["events"] == 2 * PER_DAY
    assert removed["dev"]["retention"] == "2d" and not removed["dev"]["estimated"]
    assert run("verify", "--config", str(config)).exit_code == 0
    text = run("retention", "apply", "--config", str(config), "--now", now)
    assert "nothing to remove" in text.output


def test_bad_durations_are_usage_errors(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    result = CliRunner().invoke(main, ["retention", "apply", "--db", str(db), "--retention", "dev"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["retention", "apply", "--db", str(db), "--default", "soon"])
    assert result.exit_code == 2 and "not a duration" in result.output


def test_query_by_environment(tmp_path: Path) -> None:
    db = _filled(tmp_path)
    with open_store(db) as store:
        fill(store, tmp_path / "in2", "prod-us", START, 1)
    config = tmp_path / "envs.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {
                    "db": str(db),
                    "clusters": [
                        {"name": "prod", "environment": "production"},
                        {"name": "prod-us", "environment": "production"},
                        {
                            "name": "dev",
                            "environment": "development",
                            "store": str(tmp_path / "dev.duckdb"),
                        },
                    ],
                }
            }
        )
    )
    base = ["query", "* | stats count() by cluster", "--db", str(db), "--format", "json"]
    prod = run(*base, "--environment", "production", "--config", str(config))
    assert prod.exit_code == 0, prod.output
    rows = dict(json.loads(prod.output)["rows"])
    assert set(rows) == {"prod", "prod-us"}
    dev = run(*base, "--env", "development", "--config", str(config))
    assert [r[0] for r in json.loads(dev.output)["rows"]] == ["dev"]
    missing = CliRunner().invoke(main, [*base, "--env", "staging", "--config", str(config)])
    assert missing.exit_code == 2 and "no cluster of environment 'staging'" in missing.output
    assert CliRunner().invoke(main, [*base, "--env", "production"]).exit_code == 2
