"""Field names of the query language and how they resolve to stored columns or JSON paths.

A field is written as a stored column's Event JSON path (``objectRef.resource``), a short alias
(``resource``), an underscore form (``objectref_resource``) or the column name itself. Names of
columns and aliases are case-insensitive. Any other dotted path that starts at a top-level key of
the audit Event reaches into the stored ``raw`` JSON, case-sensitively; ``[*]`` after a segment
walks every element of an array.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from kubetrail.model.schema import COLUMNS, COLUMNS_BY_NAME

#: Value type of a field, as the compiler sees it.
ValueType = Literal["string", "int", "float", "bool", "timestamp", "strings", "json"]

#: Short aliases (issue 3) -> column, or a virtual field name (``sa``).
ALIASES: dict[str, str] = {
    "user": "username",
    "groups": "user_groups",
    "ip": "source_ips",
    "ua": "user_agent",
    "uri": "request_uri",
    "ns": "namespace",
    "group": "api_group",
    "code": "response_code",
    "status": "response_code",
    "reason": "decision_reason",
    "actor": "actor_kind",
    "latency": "latency_ms",
    "time": "request_received",
    "id": "audit_id",
    "sa": "sa",
    "sa.namespace": "sa_namespace",
    "sa.name": "sa_name",
    "impersonated": "impersonated_user",
    "version": "api_version",
}

#: Keys of the fixed Event sub-objects: a typo there is an error, not a JSON path.
KNOWN_SUBKEYS: dict[str, tuple[str, ...]] = {
    "user": ("username", "uid", "groups", "extra"),
    "impersonateduser": ("username", "uid", "groups", "extra"),
    "objectref": (
        "resource",
        "namespace",
        "name",
        "uid",
        "apiGroup",
        "apiVersion",
        "resourceVersion",
        "subresource",
    ),
    "responsestatus": ("metadata", "status", "message", "reason", "details", "code"),
}

#: Top-level keys of an audit Event; a dotted path must start at one of them.
EVENT_KEYS: tuple[str, ...] = (
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "user",
    "impersonatedUser",
    "sourceIPs",
    "userAgent",
    "objectRef",
    "responseStatus",
    "requestObject",
    "responseObject",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "annotations",
    "metadata",
    "timestamp",
)

_TYPES: dict[pa.DataType, ValueType] = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.float64(): "float",
    pa.bool_(): "bool",
    pa.timestamp("us"): "timestamp",
    pa.list_(pa.string()): "strings",
}


@dataclass(frozen=True)
class JsonStep:
    """One step of a JSON path: a key, then optionally every element of the array there."""

    key: str
    each: bool = False


@dataclass(frozen=True)
class Field:
    """A resolved field.

    Attributes:
        text: the name as the user wrote it (used as the output column label).
        column: the stored column, ``"sa"`` for the virtual service-account field, or ``None``
            for a path into the ``raw`` JSON.
        type: the value type.
        path: the JSON path when ``column`` is ``None``.
    """

    text: str
    column: str | None
    type: ValueType
    path: tuple[JsonStep, ...] = ()

    @property
    def is_json(self) -> bool:
        return self.column is None

    @property
    def is_multi(self) -> bool:
        """True when the field holds many values and matches when any of them matches."""
        return self.type == "strings" or any(step.each for step in self.path)


class UnknownFieldError(Exception):
    """A field name that resolves to nothing; ``suggestion`` is the closest known name."""

    def __init__(self, name: str, suggestion: str | None, message: str = "") -> None:
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        super().__init__(message or f"unknown field '{name}'{hint}")
        self.suggestion = suggestion


def _build_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for col in COLUMNS:
        names[col.name] = col.name
        if col.path and '"' not in col.path:
            names[col.path.lower()] = col.name
            names[col.path.lower().replace(".", "_")] = col.name
        elif col.path:
            names[col.path.lower()] = col.name
    for alias, target in ALIASES.items():
        names[alias] = target
    names["requestreceived"] = "request_received"
    return names


#: Every accepted name (lower case) -> column (or ``sa``).
NAMES: dict[str, str] = _build_names()
#: The names offered in "did you mean" suggestions and the documentation.
CANONICAL_NAMES: tuple[str, ...] = tuple(
    sorted({*ALIASES, *(c.path for c in COLUMNS if c.path), *COLUMNS_BY_NAME})
)


def _suggest(name: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def suggest_field(name: str) -> str | None:
    """The known field name closest to ``name``, or ``None``."""
    return _suggest(name, CANONICAL_NAMES)


def split_path(text: str) -> list[tuple[str, bool, bool]]:
    """Split ``a."b.c"[*].d`` into ``(key, quoted, each)`` segments.

    The lexer has already checked the shape, so this only walks it.
    """
    segments: list[tuple[str, bool, bool]] = []
    i = 0
    while i < len(text):
        if text[i] == '"':
            j = i + 1
            buf: list[str] = []
            while text[j] != '"':
                if text[j] == "\\":
                    j += 1
                buf.append(text[j])
                j += 1
            key, quoted, i = "".join(buf), True, j + 1
        else:
            j = i
            while j < len(text) and text[j] not in '.["':
                j += 1
            key, quoted, i = text[i:j], False, j
        each = text.startswith("[*]", i)
        if each:
            i += 3
        segments.append((key, quoted, each))
        if i < len(text) and text[i] == ".":
            i += 1
    return segments


def resolve(text: str) -> Field:
    """Resolve a field name as written in a query.

    Raises:
        UnknownFieldError: the name is neither a column, an alias nor a path into the Event.
    """
    lowered = text.lower()
    target = NAMES.get(lowered)
    if target == "sa":
        return Field(text, "sa", "string")
    if target is not None:
        return Field(text, target, _TYPES[COLUMNS_BY_NAME[target].type])
    return _resolve_json(text)


def _resolve_json(text: str) -> Field:
    segments = split_path(text)
    head = segments[0][0]
    top = {k.lower(): k for k in EVENT_KEYS}
    if segments[0][1] or head.lower() not in top:
        raise UnknownFieldError(text, suggest_field(text))
    steps = [JsonStep(top[head.lower()], segments[0][2])]
    known = KNOWN_SUBKEYS.get(head.lower())
    for _key, _quoted, _each in segments:
        if '"' in _key or "\\" in _key:
            raise UnknownFieldError(text, None, "a JSON key in a field cannot contain '\"' or '\\'")
    for index, (key, _quoted, each) in enumerate(segments[1:]):
        if known is not None and index == 0:
            fixed = {k.lower(): k for k in known}
            if key.lower() not in fixed:
                options = [f"{steps[0].key}.{k}" for k in known]
                raise UnknownFieldError(text, _suggest(text, options))
            key = fixed[key.lower()]
        steps.append(JsonStep(key, each))
    return Field(text, None, "json", tuple(steps))
