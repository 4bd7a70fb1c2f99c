"""Simulation on the real events under tests/data/events, by both engines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kubetrail.model import load_events
from kubetrail.pipeline import ingest_paths
from kubetrail.policy import dbsim
from kubetrail.policy.diff import diff_tally, pair_tally_events
from kubetrail.policy.evaluate import decision_for
from kubetrail.policy.generate import is_system, propose
from kubetrail.policy.lint import lint_text
from kubetrail.policy.loader import load_policy, load_policy_file
from kubetrail.policy.simulate import per_event, simulate_events, summarize, tally_events
from kubetrail.store import open_store

TESTS = Path(__file__).parent.parent
EVENT_FILES = sorted(str(p) for p in (TESTS / "data" / "events").glob("*.jsonl"))
POLICIES = sorted((TESTS / "data" / "policies").glob("*.yaml"))


@pytest.fixture(scope="module")
def unique_events() -> list[dict[str, Any]]:
    """Events deduplicated on (auditID, stage, request time), as the store keeps them."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in EVENT_FILES:
        for e in load_events(f):
            seen.setdefault(
                (e["auditID"], e["stage"], e.get("requestReceivedTimestamp") or e.get("timestamp")),
                e,
            )
    return list(seen.values())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = open_store(str(tmp_path_factory.mktemp("db") / "kt.duckdb"))
    ingest_paths(s, EVENT_FILES)
    yield s
    s.close()


def test_per_event_shape(unique_events: list[dict[str, Any]]) -> None:
    policy = load_policy_file(TESTS / "data" / "policies" / "gke-gce-configure-helper.yaml")
    rows = list(per_event(policy, unique_events))
    assert len(rows) == len(unique_events)
    for row, ev in zip(rows, unique_events, strict=True):
        assert list(row) == ["auditID", "stage", "level", "rule", "kept"]
        assert row["auditID"] == ev["auditID"] and row["stage"] == ev["stage"]
        assert row["kept"] == (row["level"] != "None" and row["stage"] != "RequestReceived")


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_store_engine_equals_reference(
    path: Path, unique_events: list[dict[str, Any]], store: Any
) -> None:
    policy = load_policy_file(path)
    ref = Counter((r["auditID"], r["stage"], r["rule"]) for r in per_event(policy, unique_events))
    db = Counter(dbsim.per_event_store(store, policy))
    assert db == ref
    a = summarize(policy, tally_events(policy, unique_events))
    b = summarize(policy, dbsim.tally_store(store, policy))
    assert (a.before.events, a.after.events, a.by_level) == (
        b.before.events,
        b.after.events,
        b.by_level,
    )
    assert [(r.index, r.events, r.kept, r.top_dropped) for r in a.rules] == [
        (r.index, r.events, r.kept, r.top_dropped) for r in b.rules
    ]
    # Byte totals: same formula on both sides; the stored raw JSON may differ in formatting.
    assert abs(a.after.bytes - b.after.bytes) <= 0.05 * max(1, b.after.bytes)


def test_summary_numbers(unique_events: list[dict[str, Any]]) -> None:
    policy = load_policy(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
        "- level: None\n  verbs: [list, watch]\n- level: Metadata\n  users: [nobody]\n"
        "- level: RequestResponse\n"
    )
    sim = simulate_events(policy, unique_events)
    assert sim.before.events == len(unique_events)
    assert sum(sim.by_level.values()) == sim.before.events
    assert sum(r.events for r in sim.rules) == sim.before.events
    assert [r.events for r in sim.rules if r.index == 1] == [0]  # never hit, still listed
    dropped = next(r for r in sim.rules if r.index == 0)
    assert dropped.kept == 0 and dropped.dropped == dropped.events > 0
    assert dropped.top_dropped and all(v in ("list", "watch") for _, v, _, _ in dropped.top_dropped)
    assert 0 < sim.after.events < sim.before.events
    assert sim.after.bytes <= sim.before.bytes
    assert sim.before.per_minute is not None and sim.before.per_minute > 0


def test_metadata_shrinks_bytes(unique_events: list[dict[str, Any]]) -> None:
    meta = simulate_events(
        load_policy("apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata}]\n"), unique_events
    )
    full = simulate_events(
        load_policy("apiVersion: audit.k8s.io/v1\nrules: [{level: RequestResponse}]\n"),
        unique_events,
    )
    assert meta.after.events == full.after.events == len(unique_events)
    assert meta.after.bytes < full.after.bytes == full.before.bytes


def test_since_filters(store: Any) -> None:
    policy = load_policy("apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata}]\n")
    assert summarize(policy, dbsim.tally_store(store, policy, since="1h")).before.events == 0
    assert (
        summarize(policy, dbsim.tally_store(store, policy, since="10000d")).before.events
        == store.count()
    )


def test_diff_by_both_engines(unique_events: list[dict[str, Any]], store: Any) -> None:
    old = load_policy_file(TESTS / "data" / "policies" / "k8s-docs-example-audit-policy.yaml")
    new = load_policy_file(TESTS / "data" / "policies" / "gke-gce-configure-helper.yaml")
    a = diff_tally(old, new, pair_tally_events(old, new, unique_events))
    b = diff_tally(old, new, dbsim.pair_tally_store(store, old, new))
    assert a == b and a.changed > 0
    for change in a.changes:
        assert change.old != change.new


def test_generate_keeps_writes_and_people(unique_events: list[dict[str, Any]]) -> None:
    policy = propose(unique_events, min_share=0.005)
    assert policy.omit_stages == ("RequestReceived",)
    assert lint_text(_yaml(policy)).exit_code == 0
    for ev, row in zip(unique_events, per_event(policy, unique_events), strict=True):
        user = ev.get("user") or {}
        if ev["verb"] in (
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ) or not is_system(user.get("username"), tuple(user.get("groups") or ())):
            assert row["level"] != "None", ev
        ref = ev.get("objectRef") or {}
        if ref.get("resource") in ("secrets", "configmaps") and not ref.get("apiGroup"):
            assert row["level"] == "Metadata"
    assert decision_for(policy, None).level == "None"


def _yaml(policy: Any) -> str:
    from kubetrail.policy.generate import describe, to_yaml

    return to_yaml(policy, describe(policy))


def test_sampled_bytes_keep_counts_exact(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy_file(TESTS / "data" / "policies" / "k8s-docs-example-audit-policy.yaml")
    exact = summarize(policy, dbsim.tally_store(store, policy))
    monkeypatch.setattr(dbsim, "EXACT_BYTES_LIMIT", 0)
    monkeypatch.setattr(dbsim, "SAMPLE_PERCENT", 100.0)
    sampled = summarize(policy, dbsim.tally_store(store, policy))
    assert sampled.bytes_estimated and not exact.bytes_estimated
    assert (sampled.before.events, sampled.after.events, sampled.by_level) == (
        exact.before.events,
        exact.after.events,
        exact.by_level,
    )
    # With a 100 % "sample", per-(rule, stage) means reproduce the totals up to rounding.
    assert abs(sampled.before.bytes - exact.before.bytes) <= len(exact.rules) * 4
