"""Loading and validation: kube-apiserver's decode rules, field paths and messages (a.7)."""

# The expected messages below are kube-apiserver's text, kept on one line each so they can be
# compared with upstream by eye.
# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetrail.policy.errors import PolicyDecodeError, PolicyValidationError
from kubetrail.policy.loader import load_policy, load_policy_file, parse_policy, strict_warning
from kubetrail.policy.validate import validate

DATA = Path(__file__).parent.parent / "data" / "policies"
HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
DNS = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def errors_of(doc: dict[str, Any]) -> list[str]:
    full = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", **doc}
    return [str(e) for e in validate(parse_policy(json.dumps(full)).policy)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"rules": [{}]}, ["rules[0].level: Required value"]),
        ({"rules": [{"level": ""}]}, ["rules[0].level: Required value"]),
        (
            {"rules": [{"level": "metadata"}]},
            [
                'rules[0].level: Unsupported value: "metadata": supported values: "None", "Metadata", "Request", "RequestResponse"'
            ],
        ),
        (
            {"rules": [{"level": "None", "nonResourceURLs": ["healthz"]}]},
            [
                "rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' character"
            ],
        ),
        (
            {"rules": [{"level": "None", "nonResourceURLs": ["/ok", "/a*/b"]}]},
            [
                "rules[0].nonResourceURLs[1]: Invalid value: \"/a*/b\": non-resource URL wildcards '*' must be the final character of the rule"
            ],
        ),
        (
            {"rules": [{"level": "None", "nonResourceURLs": [""]}]},
            [
                "rules[0].nonResourceURLs[0]: Invalid value: \"\": non-resource URL rules must begin with a '/' character"
            ],
        ),
        ({"rules": [{"level": "None", "nonResourceURLs": ["*", "/x*"]}]}, []),
        (
            {"rules": [{"level": "None", "resources": [{"group": "apps/v1"}]}]},
            [f'rules[0].resources.group: Invalid value: "apps/v1": {DNS}'],
        ),
        (
            {
                "rules": [
                    {
                        "level": "None",
                        "resources": [{"group": "*"}, {"group": ""}, {"group": "a.b-c"}],
                    }
                ]
            },
            [],
        ),
        (
            {"rules": [{"level": "None", "resources": [{"resourceNames": ["x"]}]}]},
            [
                'rules[0].resources.resourceNames: Invalid value: ["x"]: using resourceNames requires at least one resource'
            ],
        ),
        (
            {
                "omitStages": ["Bogus"],
                "rules": [{"level": "None", "omitStages": ["RequestReceived", "responseStarted"]}],
            },
            [
                'omitStages[0]: Invalid value: "Bogus": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic',
                'rules[0].omitStages[1]: Invalid value: "responseStarted": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic',
            ],
        ),
        (
            {"rules": [{"level": "None", "namespaces": ["a"], "nonResourceURLs": ["/a*"]}]},
            [
                'rules[0].nonResourceURLs: Invalid value: ["/a*"]: rules cannot apply to both regular resources and non-resource URLs'
            ],
        ),
        # Not validated upstream: users, groups, verbs, namespaces, resource strings, names.
        (
            {
                "rules": [
                    {
                        "level": "None",
                        "users": ["*"],
                        "verbs": ["GET"],
                        "resources": [{"resources": ["*/*", "po*"], "resourceNames": ["*"]}],
                    }
                ]
            },
            [],
        ),
    ],
)
def test_validation_messages(doc: dict[str, Any], expected: list[str]) -> None:
    assert errors_of(doc) == expected


def test_validation_order_and_aggregate() -> None:
    text = (
        HEAD
        + "rules:\n- level: Bad\n  nonResourceURLs: [x]\n  resources: [{group: A}, {group: A}]\n"
    )
    with pytest.raises(PolicyValidationError) as info:
        load_policy(text)
    message = str(info.value)
    assert message.startswith('[rules[0].level: Unsupported value: "Bad"')
    # Identical messages of two entries (no index in the path) collapse into one.
    assert message.count('rules[0].resources.group: Invalid value: "A"') == 1
    assert message.endswith("rules cannot apply to both regular resources and non-resource URLs]")
    assert [e.path for e in info.value.errors] == [
        "rules[0].level",
        "rules[0].nonResourceURLs[0]",
        "rules[0].resources.group",
        "rules[0].resources.group",
        "rules[0].nonResourceURLs",
    ]


@pytest.mark.parametrize("text", [HEAD, HEAD + "rules: []\n", HEAD + "rules:\n"])
def test_zero_rules(text: str) -> None:
    with pytest.raises(PolicyValidationError, match=r"^loaded illegal policy with 0 rules$"):
        load_policy(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n- level: None\n", "unknown group version field /, Kind= in policy"),
        ("", "unknown group version field /, Kind= in policy"),
        (
            "apiVersion: audit.k8s.io/v2\nkind: Policy\nrules: [{level: None}]\n",
            'failed decoding: no kind "Policy" is registered for version "audit.k8s.io/v2"',
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Event\nrules: [{level: None}]\n",
            'failed decoding: no kind "Event" is registered',
        ),
        (
            HEAD + "rules:\n- level: 3\n",
            "failed decoding: json: cannot unmarshal number into Go struct field PolicyRule.rules.level of type v1.Level",
        ),
        (
            HEAD + "rules:\n- level: None\n  users: alice\n",
            "cannot unmarshal string into Go struct field PolicyRule.rules.users of type []string",
        ),
        (
            HEAD + "omitManagedFields: yes-please\nrules: [{level: None}]\n",
            "cannot unmarshal string into Go struct field Policy.omitManagedFields of type bool",
        ),
        (HEAD + "rules: [\n", "failed decoding: error converting YAML to JSON"),
        ("- a\n- b\n", "cannot unmarshal array into Go value of type v1.Policy"),
    ],
)
def test_decode_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyDecodeError) as info:
        parse_policy(text)
    assert message in str(info.value)


def test_kind_optional_with_v1() -> None:
    assert (
        load_policy("apiVersion: audit.k8s.io/v1\nrules: [{level: Metadata}]\n").rules[0].level
        == "Metadata"
    )


def test_json_documents_load() -> None:
    p = load_policy(
        json.dumps(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "Request", "verbs": ["create"]}],
            }
        )
    )
    assert p.rules[0].verbs == ("create",)


def test_v1beta1_read_with_warning() -> None:
    result = parse_policy(HEAD.replace("v1", "v1beta1") + "rules: [{level: None}]\n")
    assert result.api_version == "audit.k8s.io/v1beta1"
    assert "kube-apiserver >= 1.24 refuses" in result.warnings[0]


def test_unknown_fields_dropped_and_reported() -> None:
    text = (
        HEAD
        + "rules:\n- level: None\n  userGroup: [ops]\n  resources:\n  - group: ''\n    verbs: [get]\n- Level: Metadata\n"
    )
    result = parse_policy(text)
    assert result.unknown_fields == (
        "rules[0].userGroup",
        "rules[0].resources[0].verbs",
        "rules[1].Level",
    )
    # Dropped, as kube-apiserver does: rule 0 now matches every user; rule 1 has no level.
    assert result.policy.rules[0].user_groups == ()
    assert [str(e) for e in validate(result.policy)] == ["rules[1].level: Required value"]
    warning = strict_warning(result)
    assert warning is not None and warning.startswith(
        "Audit policy contains errors, falling back to lenient decoding: strict decoding error: [unknown field"
    )
    with pytest.raises(PolicyDecodeError, match="strict decoding error"):
        load_policy(HEAD + "rules:\n- level: None\n  userGroup: [ops]\n", strict=True)


def test_duplicate_keys_reported_last_wins() -> None:
    result = parse_policy(HEAD + "rules:\n- level: None\n  level: Metadata\n")
    assert result.duplicate_fields == ('line 5: key "level" already set in map',)
    assert result.policy.rules[0].level == "Metadata"


def test_timestamps_stay_strings() -> None:
    assert load_policy(HEAD + "rules:\n- level: None\n  users: [2024-01-01]\n").rules[0].users == (
        "2024-01-01",
    )


def test_null_lists_are_empty() -> None:
    assert (
        load_policy(HEAD + "rules:\n- level: None\n  users: null\n  resources:\n").rules[0].users
        == ()
    )


EXPECTED_UNKNOWN = {
    "openshift-writerequestbodies.yaml": ("rules[2].resources[4].resource",),
    "openshift-allrequestbodies.yaml": ("rules[2].resources[4].resource",),
}


@pytest.mark.parametrize("path", sorted(DATA.glob("*.yaml")), ids=lambda p: p.name)
def test_published_policies_load(path: Path) -> None:
    result = parse_policy(path.read_bytes(), str(path))
    assert result.unknown_fields == EXPECTED_UNKNOWN.get(path.name, ())
    policy = load_policy_file(path)
    assert policy.rules
    assert bool(result.warnings) == path.name.endswith("v1beta1.yaml")
    if path.name in EXPECTED_UNKNOWN:
        with pytest.raises(
            PolicyDecodeError, match=r'unknown field "rules\[2\]\.resources\[4\]\.resource"'
        ):
            load_policy_file(path, strict=True)
