"""The audit Policy as plain frozen dataclasses (``audit.k8s.io/v1`` ``Policy``).

Lists are tuples so that a policy is hashable and cannot change under the evaluator. Field names
follow Python style; :data:`FIELD_NAMES` maps them back to the API's JSON names.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Audit levels, lowest first (the order ``kube-apiserver`` documents them in).
LEVELS: tuple[str, ...] = ("None", "Metadata", "Request", "RequestResponse")
#: Stages of a request, in emission order.
STAGES: tuple[str, ...] = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
#: The API versions of the ``audit.k8s.io`` group that ever served Policy.
API_VERSIONS: tuple[str, ...] = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")


@dataclass(frozen=True)
class GroupResources:
    """One entry of a rule's ``resources`` list.

    Attributes:
        group: API group; ``""`` is the core group, ``"*"`` any group (kube-apiserver 1.36+).
        resources: resource patterns: ``pods``, ``pods/log``, ``*``, ``*/scale``, ``pods/*``.
        resource_names: exact object names (``"*"`` is a literal name, not a wildcard).
    """

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyRule:
    """One rule; an empty tuple means "no constraint" for that field."""

    level: str = ""
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    @property
    def is_resource_rule(self) -> bool:
        """True when the rule only matches resource requests (it sets namespaces or resources)."""
        return bool(self.namespaces or self.resources)

    @property
    def is_non_resource_rule(self) -> bool:
        """True when the rule only matches non-resource requests."""
        return not self.is_resource_rule and bool(self.non_resource_urls)

    @property
    def is_catch_all(self) -> bool:
        """True when the rule sets no constraint at all and so matches every request."""
        return not (
            self.users
            or self.user_groups
            or self.verbs
            or self.resources
            or self.namespaces
            or self.non_resource_urls
        )


@dataclass(frozen=True)
class Policy:
    """A whole policy document.

    Attributes:
        rules: the rules, tried in order.
        omit_stages: stages omitted for every rule (added to each rule's own).
        omit_managed_fields: the default for rules that do not set it.
        api_version: the document's apiVersion as written.
        name: ``metadata.name`` when set.
    """

    rules: tuple[PolicyRule, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    api_version: str = "audit.k8s.io/v1"
    name: str = ""


#: Python attribute -> JSON field name, for messages.
FIELD_NAMES: dict[str, str] = {
    "level": "level",
    "users": "users",
    "user_groups": "userGroups",
    "verbs": "verbs",
    "resources": "resources",
    "namespaces": "namespaces",
    "non_resource_urls": "nonResourceURLs",
    "omit_stages": "omitStages",
    "omit_managed_fields": "omitManagedFields",
    "group": "group",
    "resource_names": "resourceNames",
}
