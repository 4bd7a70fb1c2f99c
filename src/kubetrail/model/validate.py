"""Checks that a decoded event is an audit event kubetrail can store.

Each check returns a reason (stable, bounded text used to count rejections) and a detail (the
specific value), or ``None`` when the event passes. The checks follow what kube-apiserver can
write (``shared/kubernetes-audit-reference.md``, section b): they reject events that a real API
server could not have produced (an unknown verb on a resource request, an objectRef on a
non-resource path, an unknown resource of the core group) as well as incomplete ones.
"""

from __future__ import annotations

from .event import EventHead

API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1"})
STAGES = frozenset({"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"})
LEVELS = frozenset({"None", "Metadata", "Request", "RequestResponse"})

#: Verbs of resource requests (RequestInfo): the kube verbs plus the deprecated path prefixes.
RESOURCE_VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy"}
)

#: Resources of the core ("" group, ``/api/v1``). The core group is closed: CRDs and aggregated
#: APIs cannot add to it, so any other name there is not something an API server served.
CORE_RESOURCES = frozenset(
    {
        "bindings",
        "componentstatuses",
        "configmaps",
        "endpoints",
        "events",
        "limitranges",
        "namespaces",
        "nodes",
        "persistentvolumeclaims",
        "persistentvolumes",
        "pods",
        "podtemplates",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "serviceaccounts",
        "services",
    }
)

_REQUIRED = ("auditID", "stage", "verb", "requestURI")

Problem = tuple[str, str]


def check_envelope(head: EventHead, *, inherited_version: str | None = None) -> Problem | None:
    """Check ``kind`` and ``apiVersion`` of a top-level document or an EventList item.

    Args:
        head: the decoded document.
        inherited_version: the EventList's apiVersion when ``head`` is one of its items (items
            carry no kind or apiVersion of their own).

    Returns:
        ``(reason, detail)`` when the envelope is wrong, else ``None``.
    """
    version = head.apiVersion if head.apiVersion is not None else inherited_version
    if inherited_version is None:
        if head.kind is None:
            return ("missing required field 'kind'", "expected Event or EventList")
        if head.kind not in ("Event", "EventList"):
            return ("unknown kind", f"kind {head.kind!r} is not Event or EventList")
    elif head.kind not in (None, "Event"):
        return ("unknown kind", f"EventList item of kind {head.kind!r}")
    if version is None:
        return ("missing required field 'apiVersion'", "expected audit.k8s.io/v1 or v1beta1")
    if version not in API_VERSIONS:
        return (
            "unknown apiVersion",
            f"apiVersion {version!r} is not audit.k8s.io/v1 or audit.k8s.io/v1beta1",
        )
    return None


def check_event(head: EventHead) -> Problem | None:
    """Check the fields of one Event (its envelope already checked).

    Returns:
        ``(reason, detail)`` for the first problem found, else ``None``.
    """
    if not (head.auditID and head.stage and head.verb and head.requestURI):
        for name in _REQUIRED:
            if not getattr(head, name):
                return (f"missing required field '{name}'", f"the event has no {name}")
    if not (head.requestReceivedTimestamp or head.stageTimestamp or head.timestamp):
        return (
            "missing timestamp",
            "none of requestReceivedTimestamp, stageTimestamp or timestamp is set",
        )
    if head.stage not in STAGES:
        return ("unknown stage", f"stage {head.stage!r} is not one of {sorted(STAGES)}")
    if head.level is not None and head.level not in LEVELS:
        return ("unknown level", f"level {head.level!r} is not one of {sorted(LEVELS)}")
    return _check_request(head)


def _check_request(head: EventHead) -> Problem | None:
    verb = head.verb or ""
    uri = head.requestURI or ""  # the query string follows the path, so prefixes of the
    ref = head.objectRef  # path and of the whole URI are the same
    if ref is None:
        # Non-resource requests carry the lower-case HTTP method, whatever it is.
        if not (verb.isascii() and verb.isalpha() and verb.islower()):
            return ("unknown verb", f"verb {verb!r} is not a lower-case HTTP method")
        return None
    if verb not in RESOURCE_VERBS:
        return ("unknown verb", f"verb {verb!r} is not a Kubernetes verb")
    if not uri.startswith(("/api/", "/apis/")):
        return (
            "objectRef on a non-resource path",
            f"requestURI {head.requestURI!r} is not under /api or /apis but objectRef is set",
        )
    core = uri.startswith("/api/") and not ref.apiGroup
    if core and ref.resource is not None and ref.resource not in CORE_RESOURCES:
        return ("unknown core resource", f"resource {ref.resource!r} is not in the core group")
    return None
