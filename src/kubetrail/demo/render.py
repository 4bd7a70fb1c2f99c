"""JSON fragments rendered the way kube-apiserver's encoder writes them.

The generator never builds an Event as a dict: it glues pre-rendered string fragments, which is
what makes tens of thousands of events per second possible in Python. Every helper here returns
text that is already valid inside a compact Go ``encoding/json`` document (no spaces, ``<``,
``>`` and ``&`` escaped as ``\\u003c``, ``\\u003e`` and ``\\u0026``, non-ASCII kept as is).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

_AND_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_OR_BITS = (0x4 << 76) | (0x2 << 62)

STAGE_RECEIVED = "RequestReceived"
STAGE_STARTED = "ResponseStarted"
STAGE_COMPLETE = "ResponseComplete"


def gojson(obj: Any) -> str:
    """Serialise ``obj`` compactly with Go's HTML-safe escaping.

    Args:
        obj: any JSON-compatible value; dict key order is kept (write Go struct fields in
            declaration order and map keys sorted).

    Returns:
        The JSON text.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def uuid4_from(getrandbits: Callable[[int], int]) -> str:
    """Return a random (version 4, RFC 4122 variant) UUID drawn from a seeded generator."""
    h = f"{(getrandbits(128) & _AND_MASK) | _OR_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class MicroTime:
    """Formats microseconds since the epoch as ``2006-01-02T15:04:05.000000Z``.

    The date-and-seconds prefix is cached: timestamps of a log arrive nearly in order, so the
    costly calendar conversion runs about once per second of log time.
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, us: int) -> str:
        sec, frac = divmod(us, 1_000_000)
        prefix = self._cache.get(sec)
        if prefix is None:
            if len(self._cache) > 50_000:
                self._cache.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._cache[sec] = prefix
        return f"{prefix}.{frac:06d}Z"


def go_duration(us: int) -> str:
    """Render a duration in microseconds like Go's ``time.Duration.String`` (``7m31.0023s``)."""
    if us < 1_000:
        return f"{us}µs"
    if us < 1_000_000:
        whole, frac = divmod(us, 1_000)
        return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "ms"
    hours, rest = divmod(us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    sec, frac = divmod(rest, 1_000_000)
    seconds = f"{sec}.{frac:06d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def objref(
    resource: str,
    namespace: str = "",
    name: str = "",
    group: str = "",
    version: str = "v1",
    subresource: str = "",
    uid: str = "",
    resource_version: str = "",
) -> str:
    """Render ``,"objectRef":{...}`` with the keys in the order and omission rules of the API."""
    parts = [f'"resource":"{resource}"']
    if namespace:
        parts.append(f'"namespace":"{namespace}"')
    if name:
        parts.append(f'"name":"{name}"')
    if uid:
        parts.append(f'"uid":"{uid}"')
    if group:
        parts.append(f'"apiGroup":"{group}"')
    parts.append(f'"apiVersion":"{version}"')
    if resource_version:
        parts.append(f'"resourceVersion":"{resource_version}"')
    if subresource:
        parts.append(f'"subresource":"{subresource}"')
    return ',"objectRef":{' + ",".join(parts) + "}"


def status(code: int) -> str:
    """Render a success ``,"responseStatus":{...}`` for ``code``."""
    return f',"responseStatus":{{"metadata":{{}},"code":{code}}}'


def failure(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> str:
    """Render a ``metav1.Status`` failure as ``,"responseStatus":{...}``."""
    body: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": message}
    body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return ',"responseStatus":' + gojson(body)


def annotations(pairs: dict[str, str]) -> str:
    """Render ``,"annotations":{...}`` with sorted keys (Go map order)."""
    return ',"annotations":' + gojson(dict(sorted(pairs.items())))


def allow(reason: str) -> str:
    """The authorization annotations of an allowed request."""
    return annotations(
        {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": reason}
    )


def forbid(reason: str) -> str:
    """The authorization annotations of a denied request."""
    return annotations(
        {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": reason}
    )


def rbac_allow(binding: str, role: str, subject: str, ns: str = "") -> str:
    """The RBAC authorizer's reason for an allow, worded as kube-apiserver words it.

    Args:
        binding: the binding's name; with ``ns`` it is a RoleBinding, else a ClusterRoleBinding.
        role: ``Role/<name>`` or ``ClusterRole/<name>``.
        subject: ``User/<name>``, ``Group/<name>`` or ``ServiceAccount/<name>/<namespace>``.
        ns: the RoleBinding's namespace, empty for a ClusterRoleBinding.

    Returns:
        ``RBAC: allowed by RoleBinding "b/ns" of ClusterRole "edit" to Group "dev"`` and so on.
    """
    role_kind, role_name = role.split("/", 1)
    subject_kind, subject_name = subject.split("/", 1)
    where = f'RoleBinding "{binding}/{ns}"' if ns else f'ClusterRoleBinding "{binding}"'
    return (
        f'RBAC: allowed by {where} of {role_kind} "{role_name}" to {subject_kind} "{subject_name}"'
    )


S200 = status(200)
S201 = status(201)
S101 = status(101)
