"""``kubetrail policy lint``: what kube-apiserver would refuse (errors) and what is probably not
what the author meant (warnings).

Errors: decode failures, unknown or duplicate fields (kube-apiserver only warns and drops them,
which silently broadens the rule), validation errors, and a policy without rules. Warnings:
v1beta1/v1alpha1, group ``*`` (1.36+), rules an earlier rule shadows, rules that match nothing,
Secret/ConfigMap/TokenReview bodies logged, RequestReceived not omitted, no catch-all rule,
Request/RequestResponse on non-resource URLs, list/watch of high-volume resources at
RequestResponse, and ``*`` used as a wildcard where it is a literal.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetrail.policy.errors import PolicyDecodeError
from kubetrail.policy.loader import LoadResult, parse_policy
from kubetrail.policy.model import GroupResources, Policy, PolicyRule
from kubetrail.policy.validate import validate

#: (group, resource) whose bodies hold credentials or arbitrary data.
SENSITIVE: tuple[tuple[str, str], ...] = (
    ("", "secrets"),
    ("", "configmaps"),
    ("authentication.k8s.io", "tokenreviews"),
)
#: (group, resource) whose list/watch responses are large and frequent.
HIGH_VOLUME: tuple[tuple[str, str], ...] = (
    ("", "pods"),
    ("", "events"),
    ("", "endpoints"),
    ("", "nodes"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "services"),
    ("", "namespaces"),
    ("events.k8s.io", "events"),
    ("discovery.k8s.io", "endpointslices"),
    ("coordination.k8s.io", "leases"),
    ("apps", "replicasets"),
)
_BODY_LEVELS = ("Request", "RequestResponse")
# At level Request only these verbs carry the object (and its data) in the request body.
_WRITE_VERBS = frozenset({"create", "update", "patch"})


@dataclass(frozen=True)
class Finding:
    """One lint result.

    Attributes:
        severity: ``error`` (kube-apiserver refuses it, or a field is unknown) or ``warning``.
        code: a stable identifier (``unknown-field``, ``shadowed-rule``, ...).
        path: the field path (``rules[2].resources[4].resource``), ``""`` for the whole policy.
        message: what is wrong, in kube-apiserver's words for validation errors.
    """

    severity: str
    code: str
    path: str
    message: str


@dataclass(frozen=True)
class LintReport:
    """All findings for one policy file."""

    source: str
    findings: list[Finding]
    result: LoadResult | None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        """1 when there is an error, else 0 (warnings included)."""
        return 1 if self.errors else 0


# ---- subsumption: does rule a match every request rule b matches? ----------------------------


def _list_covers(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return not a or (bool(b) and set(b) <= set(a))


def _pattern_covers(a: str, b: str) -> bool:
    if a == "*" or a == b:
        return True
    if a.endswith("/*") and (b == a[:-2] or b.startswith(a[:-1])):
        return True
    return a.startswith("*/") and b.partition("/")[2] == a[2:]


def _entry_covers(a: GroupResources, b: GroupResources) -> bool:
    if a.group not in ("*", b.group):
        return False
    if not a.resources:
        return True
    if not b.resources or (
        a.resource_names and not _list_covers(a.resource_names, b.resource_names)
    ):
        return False
    return all(any(_pattern_covers(ra, rb) for ra in a.resources) for rb in b.resources)


def _url_covers(a: str, b: str) -> bool:
    return a == "*" or a == b or (a.endswith("*") and b.startswith(a[:-1]))


def covers(a: PolicyRule, b: PolicyRule) -> bool:
    """True when rule ``a`` matches every request rule ``b`` matches (conservative: may say
    False for some covered pairs, never True for an uncovered one)."""
    if not (_list_covers(a.users, b.users) and _list_covers(a.user_groups, b.user_groups)):
        return False
    if not _list_covers(a.verbs, b.verbs):
        return False
    if a.is_resource_rule:
        if not b.is_resource_rule or not _list_covers(a.namespaces, b.namespaces):
            return False
        if not a.resources:
            return True
        return bool(b.resources) and all(
            any(_entry_covers(ea, eb) for ea in a.resources) for eb in b.resources
        )
    if a.non_resource_urls:
        return b.is_non_resource_rule and all(
            any(_url_covers(ua, ub) for ua in a.non_resource_urls) for ub in b.non_resource_urls
        )
    return True


def _dead_pattern(r: str) -> bool:
    """Resource strings that can never match a request (``*/*``, ``po*``, ``pods/``)."""
    if r == "*":
        return False
    head, slash, tail = r.partition("/")
    if not slash:
        return "*" in r or not r
    if head == "*" and tail and "*" not in tail and "/" not in tail:
        return False
    if tail == "*" and head and "*" not in head:
        return False
    return not head or not tail or "*" in r or "/" in tail


def can_touch(rule: PolicyRule, group: str, resource: str) -> bool:
    """True when ``rule`` can match some request for (group, resource) or its subresources."""
    if rule.is_non_resource_rule:
        return False
    if not rule.resources:
        return True
    for e in rule.resources:
        if e.group not in ("*", group):
            continue
        if not e.resources:
            return True
        if any(r in ("*", resource) or r.startswith(resource + "/") for r in e.resources):
            return True
    return False


def _fully_handled(rule: PolicyRule, group: str, resource: str) -> bool:
    """True when ``rule`` matches every request for (group, resource) (no user/verb/ns limit)."""
    probe = PolicyRule(level="None", resources=(GroupResources(group, (resource,)),))
    return covers(rule, probe)


# ---- checks -----------------------------------------------------------------------------------


def _warn(code: str, path: str, message: str) -> Finding:
    return Finding("warning", code, path, message)


def _rule_warnings(policy: Policy) -> list[Finding]:
    out: list[Finding] = []
    rules = policy.rules
    for j, rule in enumerate(rules):
        path = f"rules[{j}]"
        shadow = next((i for i in range(j) if covers(rules[i], rule)), None)
        if shadow is not None:
            out.append(
                _warn(
                    "shadowed-rule",
                    path,
                    f"{path} can never match: rules[{shadow}] matches every request it would",
                )
            )
            continue
        for k, e in enumerate(rule.resources):
            if e.group == "*":
                out.append(
                    _warn(
                        "group-wildcard",
                        f"{path}.resources[{k}].group",
                        'group "*" is honoured by kube-apiserver 1.36+ only; '
                        "older versions match no request with it",
                    )
                )
            for r in e.resources:
                if _dead_pattern(r):
                    out.append(
                        _warn(
                            "dead-pattern",
                            f"{path}.resources[{k}].resources",
                            f"resource {r!r} matches nothing: only '*', '<r>', '<r>/<sub>', "
                            "'*/<sub>' and '<r>/*' are patterns",
                        )
                    )
        for field, values in (
            ("verbs", rule.verbs),
            ("users", rule.users),
            ("userGroups", rule.user_groups),
            ("namespaces", rule.namespaces),
        ):
            if "*" in values:
                out.append(
                    _warn(
                        "literal-star",
                        f"{path}.{field}",
                        f"'*' in {field} is a literal, not a wildcard: "
                        f"leave {field} empty to match all",
                    )
                )
        if rule.level in _BODY_LEVELS and rule.is_non_resource_rule:
            out.append(
                _warn(
                    "nonresource-body",
                    path,
                    f"level {rule.level} has no effect on non-resource URLs "
                    "(they never carry bodies): use Metadata",
                )
            )
        writes = not rule.verbs or bool(_WRITE_VERBS & set(rule.verbs))
        if rule.level == "RequestResponse" or (rule.level == "Request" and writes):
            for group, resource in SENSITIVE:
                if can_touch(rule, group, resource) and not any(
                    _fully_handled(rules[i], group, resource) for i in range(j)
                ):
                    what = f"{group}/{resource}" if group else resource
                    out.append(
                        _warn(
                            "sensitive-body",
                            path,
                            f"{what} bodies are logged at {rule.level}: their data ends up "
                            "in the audit log; log them at Metadata in an earlier rule",
                        )
                    )
        if rule.level == "RequestResponse" and (
            not rule.verbs or {"list", "watch"} & set(rule.verbs)
        ):
            hv = [
                f"{g}/{r}" if g else r
                for g, r in HIGH_VOLUME
                if can_touch(rule, g, r)
                and not any(_fully_handled(rules[i], g, r) for i in range(j))
            ]
            if hv:
                out.append(
                    _warn(
                        "high-volume-response",
                        path,
                        f"list/watch of high-volume resources ({', '.join(hv[:6])}"
                        f"{', ...' if len(hv) > 6 else ''}) at RequestResponse: "
                        "every list response is logged in full",
                    )
                )
    return out


def _policy_warnings(result: LoadResult) -> list[Finding]:
    policy = result.policy
    out = [_warn("legacy-api-version", "apiVersion", w) for w in result.warnings]
    if "RequestReceived" not in policy.omit_stages:
        logging = [
            i
            for i, r in enumerate(policy.rules)
            if r.level != "None" and "RequestReceived" not in r.omit_stages
        ]
        if logging:
            listed = ", ".join(f"rules[{i}]" for i in logging[:8]) + (
                ", ..." if len(logging) > 8 else ""
            )
            out.append(
                _warn(
                    "request-received",
                    "omitStages",
                    f"RequestReceived is not omitted ({listed}): each request is logged twice; "
                    "add it to the policy's omitStages",
                )
            )
    if not any(r.is_catch_all for r in policy.rules):
        out.append(
            _warn(
                "no-catch-all",
                "rules",
                "no catch-all rule: requests no rule matches get level None and are not "
                "logged; end with '- level: Metadata'",
            )
        )
    return out + _rule_warnings(policy)


def lint_text(text: str | bytes, source: str = "") -> LintReport:
    """Lint a policy document.

    Args:
        text: YAML or JSON.
        source: file name for the report.

    Returns:
        Every finding; ``exit_code`` is 1 when any is an error.
    """
    try:
        result = parse_policy(text, source)
    except PolicyDecodeError as exc:
        return LintReport(source, [Finding("error", "decode-error", exc.path, exc.reason)], None)
    findings = [
        Finding(
            "error",
            "unknown-field",
            p,
            f'unknown field "{p}": kube-apiserver drops it, which broadens the rule',
        )
        for p in result.unknown_fields
    ]
    findings += [Finding("error", "duplicate-field", "", d) for d in result.duplicate_fields]
    findings += [Finding("error", "invalid", e.path, str(e)) for e in validate(result.policy)]
    if not result.policy.rules:
        findings.append(Finding("error", "no-rules", "rules", "loaded illegal policy with 0 rules"))
    findings += _policy_warnings(result)
    return LintReport(source, findings, result)
