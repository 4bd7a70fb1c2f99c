"""kube-apiserver's validation of an audit Policy (``pkg/apis/audit/validation``), with its field
paths and messages.

Errors are collected in upstream order: the policy's omitStages, then per rule its level,
nonResourceURLs, resources, omitStages and finally the resources/non-resource combination.
users, userGroups, verbs, namespaces, resource strings and resourceNames are not validated
upstream, so they are not here (``policy lint`` warns about suspicious ones instead).
"""

from __future__ import annotations

import re

from kubetrail.policy.errors import FieldError
from kubetrail.policy.model import LEVELS, STAGES, Policy, PolicyRule

_DNS1123_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_DNS1123_SUBDOMAIN_FMT}')"
)
_SUPPORTED_LEVELS = ", ".join(f'"{lv}"' for lv in LEVELS)
_ALLOWED_STAGES = ",".join(STAGES)


def _validate_stages(stages: tuple[str, ...], path: str) -> list[FieldError]:
    return [
        FieldError(f"{path}[{k}]", "Invalid", s, f"allowed stages are {_ALLOWED_STAGES}")
        for k, s in enumerate(stages)
        if s not in STAGES
    ]


def _validate_group(group: str, path: str) -> list[FieldError]:
    if group in ("", "*"):
        return []
    errors = []
    if len(group) > 253:
        errors.append(FieldError(path, "Invalid", group, "must be no more than 253 characters"))
    if not _DNS1123_SUBDOMAIN.match(group):
        errors.append(FieldError(path, "Invalid", group, _DNS1123_MSG))
    return errors


def _validate_rule(rule: PolicyRule, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not rule.level:
        errors.append(FieldError(f"{path}.level", "Required"))
    elif rule.level not in LEVELS:
        errors.append(
            FieldError(
                f"{path}.level", "Unsupported", rule.level, f"supported values: {_SUPPORTED_LEVELS}"
            )
        )
    for j, url in enumerate(rule.non_resource_urls):
        if url == "*":
            continue
        upath = f"{path}.nonResourceURLs[{j}]"
        if not url.startswith("/"):
            errors.append(
                FieldError(
                    upath, "Invalid", url, "non-resource URL rules must begin with a '/' character"
                )
            )
        if url and "*" in url[:-1]:
            errors.append(
                FieldError(
                    upath,
                    "Invalid",
                    url,
                    "non-resource URL wildcards '*' must be the final character of the rule",
                )
            )
    # Upstream gives the resources path no index, so identical messages of two entries collapse.
    for gr in rule.resources:
        errors.extend(_validate_group(gr.group, f"{path}.resources.group"))
        if gr.resource_names and not gr.resources:
            errors.append(
                FieldError(
                    f"{path}.resources.resourceNames",
                    "Invalid",
                    list(gr.resource_names),
                    "using resourceNames requires at least one resource",
                )
            )
    errors.extend(_validate_stages(rule.omit_stages, f"{path}.omitStages"))
    if rule.non_resource_urls and (rule.resources or rule.namespaces):
        errors.append(
            FieldError(
                f"{path}.nonResourceURLs",
                "Invalid",
                list(rule.non_resource_urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        )
    return errors


def validate(policy: Policy) -> list[FieldError]:
    """Validate a policy exactly as kube-apiserver does.

    Args:
        policy: the decoded policy.

    Returns:
        Every field error in upstream order (empty when valid). A policy with zero rules passes
        validation; the loader refuses it separately.
    """
    errors = _validate_stages(policy.omit_stages, "omitStages")
    for i, rule in enumerate(policy.rules):
        errors.extend(_validate_rule(rule, f"rules[{i}]"))
    return errors
