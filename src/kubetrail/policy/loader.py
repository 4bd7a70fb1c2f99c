"""Decode a Policy document (YAML or JSON) the way kube-apiserver's policy reader does.

kube-apiserver first decodes strictly; when the only problems are unknown or duplicate fields it
logs ``Audit policy contains errors, falling back to lenient decoding: ...`` and accepts the file
with those fields dropped. :func:`parse_policy` does both at once: it returns the lenient
:class:`~kubetrail.policy.model.Policy` (what the API server evaluates) together with the strict
findings (what ``kubetrail policy lint`` reports as errors). Wrong types, bad YAML and
unregistered apiVersions are fatal, as upstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubetrail.policy.errors import PolicyDecodeError, PolicyValidationError, aggregate, go_quote
from kubetrail.policy.model import API_VERSIONS, GroupResources, Policy, PolicyRule

_OBJECT_META = frozenset(
    [
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ]
)
_LIST_FIELDS = {
    "users": "users",
    "userGroups": "user_groups",
    "verbs": "verbs",
    "namespaces": "namespaces",
    "nonResourceURLs": "non_resource_urls",
    "omitStages": "omit_stages",
}
_RULE_FIELDS = frozenset([*_LIST_FIELDS, "level", "resources", "omitManagedFields"])
_GR_FIELDS = frozenset(["group", "resources", "resourceNames"])
_POLICY_FIELDS = frozenset(
    ["apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"]
)
_GO_TYPES = {"level": "v1.Level", "omitStages": "[]v1.Stage", "omitManagedFields": "bool"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (as go-yaml does for untyped targets) and
    records duplicate keys instead of silently keeping the last one."""

    duplicates: list[tuple[int, str]]


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            loader.duplicates.append((key_node.start_mark.line + 1, str(key)))
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class LoadResult:
    """A decoded policy and what strict decoding found.

    Attributes:
        policy: the policy as kube-apiserver evaluates it (unknown fields dropped).
        unknown_fields: paths of unknown (or misspelt) fields, e.g.
            ``rules[4].resources[4].resource``.
        duplicate_fields: ``line N: key "x" already set in map`` findings.
        api_version: the document's apiVersion.
        source: file name, for messages.
    """

    policy: Policy
    unknown_fields: tuple[str, ...] = ()
    duplicate_fields: tuple[str, ...] = ()
    api_version: str = "audit.k8s.io/v1"
    source: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def strict_errors(self) -> list[str]:
        """Strict-decoding problems in kube-apiserver's wording."""
        out = [f"unknown field {go_quote(p)}" for p in self.unknown_fields]
        out += [f"duplicate field: {d}" for d in self.duplicate_fields]
        return out


def _jtype(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, struct: str, path: str, go_type: str) -> PolicyDecodeError:
    plain = ".".join(p.split("[")[0] for p in path.split("."))
    return PolicyDecodeError(
        f"failed decoding: json: cannot unmarshal {_jtype(value)} into Go struct field "
        f"{struct}.{plain} of type {go_type}",
        path,
    )


def _string(value: Any, struct: str, path: str, go_type: str = "string") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(value, struct, path, go_type)
    return value


def _strings(value: Any, struct: str, path: str, go_type: str = "[]string") -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _type_error(value, struct, path, go_type)
    elem = go_type[2:]
    return tuple(_string(v, struct, f"{path}[{i}]", elem) for i, v in enumerate(value))


def _bool(value: Any, struct: str, path: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _type_error(value, struct, path, "bool")
    return value


def _object(value: Any, struct: str, path: str, go_type: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(value, struct, path, go_type)
    return value


def _unknown(obj: dict[str, Any], known: frozenset[str], prefix: str, out: list[str]) -> None:
    out.extend(f"{prefix}{k}" for k in obj if k not in known)


def _group_resources(raw: Any, path: str, unknown: list[str]) -> GroupResources:
    obj = _object(raw, "PolicyRule", path, "v1.GroupResources")
    _unknown(obj, _GR_FIELDS, f"{path}.", unknown)
    return GroupResources(
        group=_string(obj.get("group"), "PolicyRule", f"{path}.group"),
        resources=_strings(obj.get("resources"), "PolicyRule", f"{path}.resources"),
        resource_names=_strings(obj.get("resourceNames"), "PolicyRule", f"{path}.resourceNames"),
    )


def _rule(raw: Any, path: str, unknown: list[str]) -> PolicyRule:
    obj = _object(raw, "Policy", path, "v1.PolicyRule")
    _unknown(obj, _RULE_FIELDS, f"{path}.", unknown)
    kwargs: dict[str, Any] = {
        attr: _strings(
            obj.get(name), "PolicyRule", f"{path}.{name}", _GO_TYPES.get(name, "[]string")
        )
        for name, attr in _LIST_FIELDS.items()
    }
    resources = obj.get("resources")
    if resources is not None and not isinstance(resources, list):
        raise _type_error(resources, "PolicyRule", f"{path}.resources", "[]v1.GroupResources")
    return PolicyRule(
        level=_string(obj.get("level"), "PolicyRule", f"{path}.level", "v1.Level"),
        resources=tuple(
            _group_resources(r, f"{path}.resources[{i}]", unknown)
            for i, r in enumerate(resources or [])
        ),
        omit_managed_fields=_bool(
            obj.get("omitManagedFields"), "PolicyRule", f"{path}.omitManagedFields"
        ),
        **kwargs,
    )


def parse_policy(text: str | bytes, source: str = "") -> LoadResult:
    """Decode a policy document without validating it.

    Args:
        text: YAML or JSON text.
        source: file name for messages (default ``""``).

    Returns:
        The lenient policy plus strict findings (unknown and duplicate fields).

    Raises:
        PolicyDecodeError: bad YAML/JSON, a wrong type, or an apiVersion/kind kube-apiserver
            never registered for Policy.
    """
    loader = _Loader(text)
    loader.duplicates = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PolicyDecodeError(
            f"failed decoding: error converting YAML to JSON: yaml: {exc}"
        ) from exc
    finally:
        loader.dispose()
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise PolicyDecodeError(
            f"failed decoding: json: cannot unmarshal {_jtype(doc)} into Go value of type v1.Policy"
        )
    api_version = _string(doc.get("apiVersion"), "Policy", "apiVersion")
    kind = _string(doc.get("kind"), "Policy", "kind")
    if not api_version and not kind:
        raise PolicyDecodeError("unknown group version field /, Kind= in policy")
    if not api_version:
        raise PolicyDecodeError("failed decoding: Object 'apiVersion' is missing", "apiVersion")
    if api_version not in API_VERSIONS:
        raise PolicyDecodeError(
            f"failed decoding: no kind {go_quote(kind or 'Policy')} is registered for version "
            f"{go_quote(api_version)}",
            "apiVersion",
        )
    if kind not in ("", "Policy"):
        raise PolicyDecodeError(
            f"failed decoding: no kind {go_quote(kind)} is registered for version "
            f"{go_quote(api_version)}",
            "kind",
        )
    unknown: list[str] = []
    _unknown(doc, _POLICY_FIELDS, "", unknown)
    meta = _object(doc.get("metadata"), "Policy", "metadata", "v1.ObjectMeta")
    _unknown(meta, _OBJECT_META, "metadata.", unknown)
    rules = doc.get("rules")
    if rules is not None and not isinstance(rules, list):
        raise _type_error(rules, "Policy", "rules", "[]v1.PolicyRule")
    policy = Policy(
        rules=tuple(_rule(r, f"rules[{i}]", unknown) for i, r in enumerate(rules or [])),
        omit_stages=_strings(doc.get("omitStages"), "Policy", "omitStages", "[]v1.Stage"),
        omit_managed_fields=bool(
            _bool(doc.get("omitManagedFields"), "Policy", "omitManagedFields")
        ),
        api_version=api_version,
        name=_string(meta.get("name"), "Policy", "metadata.name"),
    )
    warnings: list[str] = []
    if api_version != "audit.k8s.io/v1":
        warnings.append(
            f"apiVersion {api_version} was removed in Kubernetes 1.24: kube-apiserver >= 1.24 "
            "refuses this file; use audit.k8s.io/v1 (the fields are identical)"
        )
    dups = tuple(
        f"line {line}: key {go_quote(key)} already set in map" for line, key in loader.duplicates
    )
    return LoadResult(policy, tuple(unknown), dups, api_version, source, tuple(warnings))


def check_policy(result: LoadResult, *, strict: bool = False) -> Policy:
    """Validate a decoded policy as kube-apiserver's loader does, and return it.

    Args:
        result: what :func:`parse_policy` returned.
        strict: also refuse unknown and duplicate fields (default ``False``: drop them, as
            kube-apiserver does).

    Raises:
        PolicyDecodeError: strict mode and a strict-decoding problem.
        PolicyValidationError: validation errors, or zero rules.
    """
    from kubetrail.policy.validate import validate

    if strict and result.strict_errors:
        raise PolicyDecodeError("strict decoding error: " + ", ".join(result.strict_errors))
    errors = validate(result.policy)
    if errors:
        raise PolicyValidationError(errors)
    if not result.policy.rules:
        raise PolicyValidationError([], "loaded illegal policy with 0 rules")
    return result.policy


def load_policy(text: str | bytes, *, strict: bool = False, source: str = "") -> Policy:
    """Decode and validate a policy; the result is what kube-apiserver would evaluate.

    Args:
        text: YAML or JSON.
        strict: refuse unknown/duplicate fields instead of dropping them (default ``False``).
        source: file name for messages.
    """
    return check_policy(parse_policy(text, source), strict=strict)


def load_policy_file(path: str | Path, *, strict: bool = False) -> Policy:
    """:func:`load_policy` on a file."""
    p = Path(path)
    return load_policy(p.read_bytes(), strict=strict, source=str(p))


def strict_warning(result: LoadResult) -> str | None:
    """The warning kube-apiserver logs when it falls back to lenient decoding, or None."""
    if not result.strict_errors:
        return None
    joined = aggregate(result.strict_errors)
    return (
        "Audit policy contains errors, falling back to lenient decoding: "
        f"strict decoding error: {joined}"
    )
