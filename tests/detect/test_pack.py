"""The built-in rule pack: its lint, and for every rule an event that fires it and a close
non-match, through the same batch engine as ingest (and the Python predicate must agree)."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from rule_cases import CASES, PATCH_CASES, VARIABLES, lines, numbered

from kubetrail.detect.engine import BatchEngine, rule_filter
from kubetrail.detect.loader import PACK_DIR, load_ruleset
from kubetrail.model.normalize import normalize_records
from kubetrail.query import compile_predicate

RULESET = load_ruleset(variables=VARIABLES)
STATELESS = [r for r in RULESET.rules if r.stateless]
_TAG = re.compile(r"^T\d{4}(\.\d{3})?$")


def _table(events: list[dict]):
    records = [(i + 1, line) for i, line in enumerate(lines(events).splitlines())]
    batch = normalize_records(records, cluster="test", source="cases", batch_id="b")
    assert not batch.rejections, batch.rejections
    return batch.table


@pytest.fixture(scope="module")
def fired() -> dict[str, set[str]]:
    """auditID -> the rules that fired on it, for every case event in one batch."""
    engine = BatchEngine(RULESET.rules)
    events = numbered(CASES)
    for i, (rule_id, e) in enumerate(PATCH_CASES):
        events.append({**e, "auditID": f"{rule_id}/patch{i}"})
    result: dict[str, set[str]] = defaultdict(set)
    for m in engine.scan(_table(events)):
        for audit_id in m.audit_ids:
            result[audit_id].add(m.rule.id)
    engine.close()
    return result


def test_pack_size_and_lint() -> None:
    assert len(RULESET.rules) >= 40
    ids = [r.id for r in RULESET.rules]
    titles = [r.title for r in RULESET.rules]
    assert len(set(ids)) == len(ids) and len(set(titles)) == len(titles)
    for rule in RULESET.rules:
        area_what = rule.id.removeprefix("k8s.").replace(".", "_", 1)
        assert rule.source.endswith(f"/{area_what}.yaml"), (rule.id, rule.source)
        assert rule.tags and all(_TAG.match(t) for t in rule.tags), rule.id
        assert rule.description and rule.needs.requests, rule.id
        for dialect in ("duckdb", "clickhouse"):
            rule_filter(rule, dialect)
    assert len(list(PACK_DIR.glob("*.yaml"))) == len(RULESET.rules)


def test_every_stateless_rule_has_cases() -> None:
    assert set(CASES) == {r.id for r in STATELESS}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_its_event(rule_id: str, fired: dict[str, set[str]]) -> None:
    assert rule_id in fired[f"{rule_id}/fires"]


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_stays_quiet_on_close_non_match(rule_id: str, fired: dict[str, set[str]]) -> None:
    assert rule_id not in fired[f"{rule_id}/quiet"]


@pytest.mark.parametrize(("index", "rule_id"), [(i, r) for i, (r, _) in enumerate(PATCH_CASES)])
def test_patch_bodies_fire_body_rules(index: int, rule_id: str, fired) -> None:
    assert rule_id in fired[f"{rule_id}/patch{index}"]


def test_python_predicate_agrees_with_the_engine(fired: dict[str, set[str]]) -> None:
    rows = _table(numbered(CASES)).to_pylist()
    for rule in STATELESS:
        when = compile_predicate(rule.when)
        excepts = [compile_predicate(f"stage=* and ({e})") for e in rule.exceptions]
        for row in rows:
            expected = when(row) and not any(x(row) for x in excepts)
            assert expected == (rule.id in fired[row["audit_id"]]), (rule.id, row["audit_id"])


def test_exec_alert_shows_the_decoded_command(fired) -> None:
    engine = BatchEngine([RULESET.get("k8s.pod.exec")])
    from rule_cases import EXEC_QUERY, event

    e = event("create", "pods", name="web", sub="exec", code=101, query=EXEC_QUERY)
    e["auditID"] = "x"
    (match,) = engine.scan(_table([e]))
    assert "`sh -c 'cat /etc/shadow'`" in match.message
    assert match.key == "alice@example.com|default|web"


def test_large_batches_take_the_prefilter_path_with_the_same_result(monkeypatch, fired) -> None:
    import kubetrail.detect.engine as engine_module

    monkeypatch.setattr(engine_module, "SMALL_BATCH", 0)
    engine = BatchEngine(RULESET.rules)
    assert engine.prefilter_sql is not None
    events = numbered(CASES)
    for i, (rule_id, e) in enumerate(PATCH_CASES):
        events.append({**e, "auditID": f"{rule_id}/patch{i}"})
    again: dict[str, set[str]] = defaultdict(set)
    for m in engine.scan(_table(events)):
        for audit_id in m.audit_ids:
            again[audit_id].add(m.rule.id)
    engine.close()
    assert {k: v for k, v in again.items() if v} == {k: v for k, v in fired.items() if v}
