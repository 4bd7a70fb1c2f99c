"""The rule format and the rule set: errors name file, rule and key; overrides; variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrail.detect.loader import load_ruleset
from kubetrail.detect.rules import expand, parse_duration, parse_rule
from kubetrail.errors import RuleError

GOOD = {
    "id": "acme.exec.prod",
    "title": "Exec in prod",
    "severity": "high",
    "tags": ["T1609"],
    "when": "subresource=exec ns=prod-* not user in $ci_identities",
    "output": "{user} ran {command}",
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_rule() -> None:
    rule = parse_rule(GOOD, "f.yaml", {"ci_identities": ["jenkins", "system:serviceaccount:ci:*"]})
    assert rule.stateless and rule.kind == "stateless" and rule.key == ("user",)
    assert 'user in ("jenkins", "system:serviceaccount:ci:*")' in rule.when


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "urgent"}, "f.yaml: rule acme.exec.prod: severity: 'urgent' is not one of"),
        ({"when": "usr=bob"}, "f.yaml: rule acme.exec.prod: when: unknown field 'usr'"),
        ({"when": "verb=get | head 3"}, "when: a rule filter cannot have pipe stages"),
        ({"wehn": "x"}, "f.yaml: rule acme.exec.prod: wehn: unknown key; did you mean 'when'?"),
        ({"output": "{usr}"}, "output: unknown field 'usr'"),
        ({"threshold": {"count": 0, "window": "5m"}}, "threshold.count: expected a whole number"),
        (
            {"threshold": {"count": 5, "window": "5 minutes"}},
            "threshold.window: expected a duration",
        ),
        ({"first_seen": {"fields": ["usr"]}}, "first_seen.fields: unknown field 'usr'"),
        ({"when": "user in $ci_identites"}, "unknown variable '$ci_identites'; did you mean"),
        ({"needs": {"level": "Everything"}}, "needs.level: 'Everything' is not one of"),
        ({"except": ["verb=="]}, "except[0]:"),
        ({"id": "Bad Id"}, "id: use 3-80 lower-case letters"),
        ({"enabled": "yes"}, "enabled: expected true or false"),
    ],
)
def test_errors_name_file_rule_and_key(change: dict, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule({**GOOD, **change}, "f.yaml", {"ci_identities": []})
    assert message in str(info.value)


def test_missing_required_key() -> None:
    data = {k: v for k, v in GOOD.items() if k != "when"}
    with pytest.raises(RuleError, match=r"rule acme\.exec\.prod: when: missing"):
        parse_rule(data, "f.yaml", {})


def test_threshold_and_first_seen_do_not_combine() -> None:
    data = {**GOOD, "threshold": {"count": 3, "window": "5m"}, "first_seen": {"fields": ["ip"]}}
    with pytest.raises(RuleError, match="cannot be combined"):
        parse_rule(data, "f.yaml", {"ci_identities": []})


def test_durations_and_empty_variables() -> None:
    assert parse_duration("7d", "x").days == 7
    assert expand("user in $a", {"a": []}, "w") == 'user in ("")'
    assert expand("user in $a", {"a": ['we"ird\\']}, "w") == 'user in ("we\\"ird\\\\")'


def test_user_rules_override_disable_and_add(tmp_path: Path) -> None:
    _write(tmp_path, "off.yaml", "id: k8s.pod.exec\nenabled: false\n")
    _write(tmp_path, "grade.yaml", "id: k8s.secret.deleted\nseverity: critical\n")
    _write(
        tmp_path,
        "mine.yml",
        "rules:\n  - id: acme.one\n    title: One\n    severity: low\n"
        "    when: verb=delete\n    output: '{user}'\n",
    )
    ruleset = load_ruleset(
        [tmp_path], disabled=["k8s.namespace.deleted"], variables={"watched_secrets": ["x"]}
    )
    assert not ruleset.get("k8s.pod.exec").enabled
    assert ruleset.get("k8s.secret.deleted").severity == "critical"
    assert ruleset.get("k8s.secret.deleted").source.endswith("grade.yaml")
    assert ruleset.get("acme.one").enabled
    assert not ruleset.get("k8s.namespace.deleted").enabled
    assert ruleset.variables["watched_secrets"] == ["x"]


def test_user_rule_errors_name_their_file(tmp_path: Path) -> None:
    bad = _write(
        tmp_path, "bad.yaml", "id: acme.bad\ntitle: t\nseverity: low\nwhen: 'verb='\noutput: x\n"
    )
    with pytest.raises(RuleError, match=f"{bad}: rule acme.bad: when:"):
        load_ruleset([tmp_path])
    _write(tmp_path, "bad.yaml", "id: [\n")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_ruleset([tmp_path])


def test_duplicate_ids_and_unknown_disabled(tmp_path: Path) -> None:
    rule = "id: acme.two\ntitle: t\nseverity: low\nwhen: verb=get\noutput: x\n"
    _write(tmp_path, "a.yaml", rule)
    _write(tmp_path, "b.yaml", rule)
    with pytest.raises(RuleError, match="also defined in"):
        load_ruleset([tmp_path])
    with pytest.raises(RuleError, match=r"no rule has the id k8s\.nope"):
        load_ruleset(disabled=["k8s.nope"])
    with pytest.raises(RuleError, match="no such rule file or directory"):
        load_ruleset([tmp_path / "missing"])
