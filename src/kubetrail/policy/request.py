"""The request attributes an audit policy is evaluated against.

kube-apiserver evaluates the policy on the *authorizer attributes* of a request (user, verb,
and the RequestInfo parsed from the URL). :func:`request_from_uri` reimplements RequestInfo
(``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``); :func:`request_from_event`
recovers the attributes from a recorded audit Event, whatever level it was recorded at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


@dataclass(frozen=True)
class Request:
    """Authorizer attributes of one request.

    Attributes:
        user: authenticated user name; ``None`` when authentication failed (no user).
        groups: the user's groups.
        verb: kube verb, or lower-case HTTP method for non-resource requests.
        is_resource: resource request (``/api/...``, ``/apis/<g>/<v>/...``) or not.
        api_group: ``""`` for the core group.
        resource, subresource, namespace, name: from the URL (``""`` when absent).
        path: the URL path without query (what nonResourceURLs match).
    """

    user: str | None = None
    groups: tuple[str, ...] = ()
    verb: str = ""
    is_resource: bool = False
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = "/"


def _exact_name(query: str) -> str:
    for selector in parse_qs(query).get("fieldSelector", []):
        for term in selector.split(","):
            for op in ("==", "="):
                key, sep, value = term.partition(op)
                if sep and key.strip() == "metadata.name" and not value.startswith("="):
                    if value and value not in (".", "..") and "/" not in value and "%" not in value:
                        return value
                    break
    return ""


def request_from_uri(
    method: str, uri: str, user: str | None = None, groups: tuple[str, ...] = ()
) -> Request:
    """Parse a request the way kube-apiserver's RequestInfo resolver does.

    Args:
        method: HTTP method (``GET``, ``POST``, ...).
        uri: the request URI, with or without a query string.
        user: authenticated user name, or ``None`` (default) for a failed authentication.
        groups: the user's groups (default none).

    Returns:
        The request attributes. Non-resource requests get the lower-case method as verb.
    """
    path, _, query = uri.partition("?")
    path = path or "/"
    parts = path.strip("/").split("/")
    nonres = Request(user, tuple(groups), method.lower(), False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonres
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return nonres
        group, rest = rest[0], rest[1:]
    rest = rest[1:]  # the version
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:  # upstream: "unable to determine kind and namespace from url"
            return nonres
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        watch = parse_qs(query).get("watch", [])
        verb = "watch" if watch and watch[0] in _TRUE else "list"
        name = _exact_name(query)
    if not name and verb == "delete":
        verb = "deletecollection"
    return Request(
        user, tuple(groups), verb, True, group, resource, subresource, namespace, name, path
    )


def _user(event: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    user = event.get("user") or {}
    name = user.get("username") or None
    return name, tuple(user.get("groups") or ())


def request_from_event(event: Mapping[str, Any]) -> Request:
    """The attributes kube-apiserver evaluated the policy on, recovered from an audit Event.

    The event's own fields decide, whatever level it was recorded at: ``user`` (``None`` when it
    is ``{}`` or has no username), ``verb``, ``objectRef`` (present with a resource means a
    resource request), and ``requestURI`` (the path, without query). Two corrections make it
    exact: a ``create`` without subresource gets name ``""`` (kube-apiserver fills
    ``objectRef.name`` from the body *after* evaluating the policy), and a v1alpha1 objectRef
    without ``apiGroup`` takes the group from ``apiVersion`` (``apps/v1``). When ``objectRef`` is
    missing (trimmed events), the requestURI is parsed with the RequestInfo rules.
    """
    user, groups = _user(event)
    verb = str(event.get("verb") or "")
    uri = str(event.get("requestURI") or "/")
    path = uri.split("?", 1)[0]
    ref = event.get("objectRef") or {}
    if not ref.get("resource"):
        if ref:
            return Request(user, groups, verb, False, path=path)
        parsed = request_from_uri("GET", uri, user, groups)
        if not parsed.is_resource:
            return Request(user, groups, verb, False, path=path)
        return Request(
            user,
            groups,
            verb,
            True,
            parsed.api_group,
            parsed.resource,
            parsed.subresource,
            parsed.namespace,
            "" if verb == "create" and not parsed.subresource else parsed.name,
            path,
        )
    group = ref.get("apiGroup") or ""
    if not group and "/" in (ref.get("apiVersion") or ""):
        group = ref["apiVersion"].split("/", 1)[0]
    subresource = ref.get("subresource") or ""
    name = "" if verb == "create" and not subresource else (ref.get("name") or "")
    return Request(
        user,
        groups,
        verb,
        True,
        group,
        ref["resource"],
        subresource,
        ref.get("namespace") or "",
        name,
        path,
    )
