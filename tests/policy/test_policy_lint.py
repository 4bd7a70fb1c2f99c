"""``policy lint``: errors (exit 1) and warnings (exit 0) on synthetic and published policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrail.policy.lint import lint_text

DATA = Path(__file__).parent.parent / "data" / "policies"
HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
TAIL = "- level: Metadata\n"


def codes(text: str) -> list[tuple[str, str, str]]:
    return [(f.severity, f.code, f.path) for f in lint_text(text).findings]


def test_clean_policy() -> None:
    rep = lint_text(HEAD + "rules:\n- level: None\n  nonResourceURLs: [/healthz*]\n" + TAIL)
    assert rep.findings == [] and rep.exit_code == 0


def test_unknown_field_is_error_with_path() -> None:
    rep = lint_text(HEAD + "rules:\n- level: None\n  userGroup: [x]\n" + TAIL)
    assert [(f.severity, f.code, f.path) for f in rep.errors] == [
        ("error", "unknown-field", "rules[0].userGroup")
    ]
    assert rep.exit_code == 1


def test_validation_error_is_error() -> None:
    rep = lint_text(HEAD + "rules:\n- level: Everything\n")
    assert rep.exit_code == 1 and rep.errors[0].path == "rules[0].level"
    assert rep.errors[0].message.startswith('rules[0].level: Unsupported value: "Everything"')


def test_decode_error_and_no_rules() -> None:
    assert lint_text("rules: [{level: None}]").errors[0].code == "decode-error"
    assert lint_text(HEAD + "rules: []\n").errors[0].message == "loaded illegal policy with 0 rules"


def test_v1beta1_is_warning_only() -> None:
    rep = lint_text(HEAD.replace("/v1", "/v1beta1") + "rules:\n" + TAIL)
    assert rep.exit_code == 0 and [f.code for f in rep.warnings] == ["legacy-api-version"]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            "- level: None\n  users: [a]\n- level: Metadata\n  users: [a]\n  verbs: [get]\n" + TAIL,
            ("shadowed-rule", "rules[1]"),
        ),
        (
            "- level: None\n  resources: [{group: ''}]\n"
            "- level: None\n  resources: [{group: '', resources: [pods/log]}]\n" + TAIL,
            ("shadowed-rule", "rules[1]"),
        ),
        (
            "- level: None\n  nonResourceURLs: ['/healthz*']\n"
            "- level: None\n  nonResourceURLs: [/healthz/etcd]\n" + TAIL,
            ("shadowed-rule", "rules[1]"),
        ),
        ("- level: Metadata\n- level: None\n  users: [a]\n", ("shadowed-rule", "rules[1]")),
        (
            "- level: None\n  resources: [{group: '', resources: ['*/*']}]\n" + TAIL,
            ("dead-pattern", "rules[0].resources[0].resources"),
        ),
        ("- level: None\n  verbs: ['*']\n" + TAIL, ("literal-star", "rules[0].verbs")),
        (
            "- level: Request\n  resources: [{group: '', resources: [secrets]}]\n" + TAIL,
            ("sensitive-body", "rules[0]"),
        ),
        (
            "- level: RequestResponse\n  resources: [{group: authentication.k8s.io}]\n" + TAIL,
            ("sensitive-body", "rules[0]"),
        ),
        ("- level: Request\n", ("sensitive-body", "rules[0]")),
        (
            "- level: Request\n  nonResourceURLs: [/metrics]\n" + TAIL,
            ("nonresource-body", "rules[0]"),
        ),
        (
            "- level: RequestResponse\n  verbs: [list, watch]\n"
            "  resources: [{group: '', resources: [pods]}]\n" + TAIL,
            ("high-volume-response", "rules[0]"),
        ),
        (
            "- level: None\n  resources: [{group: '*'}]\n" + TAIL,
            ("group-wildcard", "rules[0].resources[0].group"),
        ),
        ("- level: None\n  users: [a]\n", ("no-catch-all", "rules")),
    ],
)
def test_warnings(rules: str, expected: tuple[str, str]) -> None:
    found = codes(HEAD + "rules:\n" + rules)
    assert ("warning", *expected) in found
    assert all(sev == "warning" for sev, _, _ in found)


def test_sensitive_covered_earlier_is_quiet() -> None:
    text = (
        HEAD
        + "rules:\n- level: Metadata\n  resources:\n"
        + "  - {group: '', resources: [secrets, configmaps]}\n"
        + "  - {group: authentication.k8s.io, resources: [tokenreviews]}\n"
        + "- level: Request\n  verbs: [create, update]\n"
        + TAIL
    )
    assert [c for c in codes(text) if c[1] == "sensitive-body"] == []


def test_request_level_reads_do_not_leak() -> None:
    text = HEAD + "rules:\n- level: Request\n  verbs: [get, list, watch, delete]\n" + TAIL
    assert [c for c in codes(text) if c[1] == "sensitive-body"] == []


def test_request_received_warning() -> None:
    text = "apiVersion: audit.k8s.io/v1\nrules:\n- level: None\n  users: [a]\n- level: Metadata\n"
    assert ("warning", "request-received", "omitStages") in codes(text)


EXPECTED_EXIT = {"openshift-writerequestbodies.yaml": 1, "openshift-allrequestbodies.yaml": 1}


@pytest.mark.parametrize("path", sorted(DATA.glob("*.yaml")), ids=lambda p: p.name)
def test_published_policies_lint(path: Path) -> None:
    rep = lint_text(path.read_bytes(), path.name)
    assert rep.exit_code == EXPECTED_EXIT.get(path.name, 0)
    if rep.exit_code:
        assert [(f.code, f.path) for f in rep.errors] == [
            ("unknown-field", "rules[2].resources[4].resource")
        ]


def test_recommended_policy_passes_its_own_lint() -> None:
    path = (
        Path(__file__).parent.parent.parent / "deploy" / "policies" / "kubetrail-recommended.yaml"
    )
    rep = lint_text(path.read_bytes(), path.name)
    assert rep.findings == []
