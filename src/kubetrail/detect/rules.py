"""The rule format: YAML -> :class:`Rule`, validated with errors that name file, rule and key.

A rule file holds one rule (a mapping) or several (``rules: [...]``). Filters are written in the
query language; ``$name`` in a filter is replaced by the variable's values as a parenthesised
list (for ``user in $ci_identities``). See docs/detections.md for every key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from ..errors import KubetrailError, RuleError
from ..query.fields import UnknownFieldError, resolve
from ..query.parser import parse

SEVERITIES = ("info", "low", "medium", "high", "critical")
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,79}$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Placeholders of scheduled rules' output that are not event fields.
SPECIAL_PLACEHOLDERS = ("count", "window", "first", "last")
#: Placeholders that only ``audit_errors`` rules fill (the plugin whose counter went up).
AUDIT_ERROR_PLACEHOLDERS = ("plugin",)

_KEYS = (
    "id",
    "title",
    "description",
    "severity",
    "tags",
    "when",
    "except",
    "threshold",
    "first_seen",
    "silence",
    "audit_errors",
    "key",
    "output",
    "enabled",
    "needs",
    "status",
    "references",
    "falsepositives",
)
_REQUIRED = ("id", "title", "severity", "when", "output")


@dataclass(frozen=True)
class Threshold:
    """Fire when ``count`` matching requests share the ``by`` values within ``window``."""

    count: int
    window: timedelta
    by: tuple[str, ...]


@dataclass(frozen=True)
class FirstSeen:
    """Fire when the ``fields`` combination was not seen during the ``learn`` period before."""

    fields: tuple[str, ...]
    learn: timedelta


@dataclass(frozen=True)
class NeededRequest:
    """A request a rule must see, to check a Policy records it (``rules check``)."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = "default"
    user: str = "alice@example.com"


@dataclass(frozen=True)
class Needs:
    """What the audit policy must record for a rule to work."""

    level: str = "Metadata"
    stages: tuple[str, ...] = ("ResponseComplete",)
    requests: tuple[NeededRequest, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One detection rule (see docs/detections.md).

    ``when`` and ``exceptions`` hold the filters after variable expansion; ``source`` is the
    file the rule came from.
    """

    id: str
    title: str
    severity: str
    when: str
    output: str
    description: str = ""
    tags: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    threshold: Threshold | None = None
    first_seen: FirstSeen | None = None
    silence: timedelta | None = None
    #: Fire when a cluster's scraped ``apiserver_audit_error_total`` rises by at least this.
    audit_errors: int | None = None
    key: tuple[str, ...] = ("user",)
    enabled: bool = True
    needs: Needs = field(default_factory=Needs)
    status: str = "stable"
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    source: str = ""

    @property
    def stateless(self) -> bool:
        """True for rules evaluated on every batch (no threshold, first-seen, silence or
        audit_errors)."""
        return (
            self.threshold is None
            and self.first_seen is None
            and self.silence is None
            and self.audit_errors is None
        )

    @property
    def kind(self) -> str:
        """``stateless``, ``threshold``, ``first_seen``, ``silence`` or ``audit_errors``."""
        if self.threshold is not None:
            return "threshold"
        if self.first_seen is not None:
            return "first_seen"
        if self.silence is not None:
            return "silence"
        if self.audit_errors is not None:
            return "audit_errors"
        return "stateless"


def parse_duration(text: Any, where: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``7d`` -> a timedelta.

    Raises:
        RuleError: not a positive whole number followed by s, m, h or d.
    """
    m = _DURATION.match(str(text).strip()) if isinstance(text, str | int) else None
    if m is None or int(m.group(1)) == 0:
        raise RuleError(f"{where}: expected a duration like 30s, 5m, 2h or 7d, got {text!r}")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def load_rule_file(
    path: str | Path,
    variables: Mapping[str, list[str]],
    environments: Mapping[str, Sequence[str]] | None = None,
) -> list[Rule]:
    """Read and validate every rule of one YAML file.

    Raises:
        RuleError: the file cannot be read, is not YAML, or a rule is invalid (the message
            names the file, the rule and the key).
    """
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise RuleError(f"{where}: not valid YAML: {exc}") from exc
    return parse_rules(data, where, variables, environments)


def parse_rules(
    data: Any,
    where: str,
    variables: Mapping[str, list[str]],
    environments: Mapping[str, Sequence[str]] | None = None,
) -> list[Rule]:
    """Rules from decoded YAML: one mapping, or ``{rules: [...]}``."""
    if isinstance(data, dict) and set(data) == {"rules"}:
        items = data["rules"]
        if not isinstance(items, list):
            raise RuleError(f"{where}: rules: expected a list of rules")
    elif isinstance(data, dict):
        items = [data]
    else:
        raise RuleError(f"{where}: expected a rule (a mapping) or 'rules:' with a list")
    return [parse_rule(item, where, variables, i, environments) for i, item in enumerate(items)]


def parse_rule(
    data: Any,
    where: str,
    variables: Mapping[str, list[str]],
    index: int = 0,
    environments: Mapping[str, Sequence[str]] | None = None,
) -> Rule:
    """Validate one rule mapping.

    ``environments`` (environment -> clusters, from the configuration) resolves
    ``environment=NAME`` in ``when`` and ``except`` (see :mod:`.environments`).

    Raises:
        RuleError: naming ``where``, the rule id (or its index) and the key.
    """
    if not isinstance(data, dict):
        raise RuleError(f"{where}: rules[{index}]: expected a mapping")
    name = str(data.get("id") or f"rules[{index}]")
    at = f"{where}: rule {name}"
    for key in data:
        if key not in _KEYS:
            near = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise RuleError(f"{at}: {key}: unknown key{hint}")
    for key in _REQUIRED:
        if data.get(key) in (None, ""):
            raise RuleError(f"{at}: {key}: missing (required)")
    rule_id = _text(data, "id", at)
    if not _ID.match(rule_id):
        raise RuleError(f"{at}: id: use 3-80 lower-case letters, digits, '.', '_' or '-'")
    severity = _text(data, "severity", at)
    if severity not in SEVERITIES:
        raise RuleError(f"{at}: severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    when = _filter(_text(data, "when", at), f"{at}: when", variables, environments)
    exceptions = tuple(
        _filter(text, f"{at}: except[{i}]", variables, environments)
        for i, text in enumerate(_texts(data, "except", at))
    )
    key = _fields(_texts(data, "key", at), f"{at}: key") if "key" in data else ("user",)
    output = _text(data, "output", at)
    special = SPECIAL_PLACEHOLDERS + (AUDIT_ERROR_PLACEHOLDERS if "audit_errors" in data else ())
    for placeholder in _PLACEHOLDER.findall(output):
        if placeholder.strip() not in special:
            _fields([placeholder.strip()], f"{at}: output")
    rule = Rule(
        id=rule_id,
        title=_text(data, "title", at),
        severity=severity,
        when=when,
        output=output,
        description=str(data.get("description") or ""),
        tags=_texts(data, "tags", at),
        exceptions=exceptions,
        threshold=_threshold(data.get("threshold"), f"{at}: threshold"),
        first_seen=_first_seen(data.get("first_seen"), f"{at}: first_seen"),
        silence=parse_duration(data["silence"], f"{at}: silence") if "silence" in data else None,
        audit_errors=_audit_errors(data.get("audit_errors"), f"{at}: audit_errors"),
        key=key,
        enabled=_bool(data, "enabled", at),
        needs=_needs(data.get("needs"), f"{at}: needs"),
        status=str(data.get("status") or "stable"),
        references=_texts(data, "references", at),
        falsepositives=_texts(data, "falsepositives", at),
        source=where,
    )
    kinds = [k for k in ("threshold", "first_seen", "silence", "audit_errors") if k in data]
    if len(kinds) > 1:
        raise RuleError(f"{at}: {kinds[1]}: cannot be combined with {kinds[0]}")
    return rule


def expand(text: str, variables: Mapping[str, list[str]], where: str) -> str:
    """Replace ``$name`` by the variable's values as a query-language list ``("a", "b")``.

    An empty list becomes ``("")``, which no real value equals.
    """

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            near = difflib.get_close_matches(name, list(variables), n=1)
            hint = f"; did you mean '${near[0]}'?" if near else ""
            raise RuleError(f"{where}: unknown variable '${name}'{hint}")
        values = variables[name] or [""]
        return "(" + ", ".join(_quote(v) for v in values) + ")"

    return _VARIABLE.sub(one, text)


def _quote(value: str) -> str:
    # Keep '*' a wildcard: allow-lists use patterns such as system:serviceaccount:ci:*.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _filter(
    text: str,
    where: str,
    variables: Mapping[str, list[str]],
    environments: Mapping[str, Sequence[str]] | None = None,
) -> str:
    from .environments import expand_environments

    expanded = expand_environments(expand(text, variables, where), environments, where)
    try:
        query = parse(expanded)
    except KubetrailError as exc:
        raise RuleError(f"{where}: {exc}") from exc
    if query.stages:
        raise RuleError(f"{where}: a rule filter cannot have pipe stages")
    return expanded


def _fields(names: Any, where: str) -> tuple[str, ...]:
    out = []
    for name in names:
        try:
            resolve(str(name))
        except UnknownFieldError as exc:
            raise RuleError(f"{where}: {exc}") from exc
        out.append(str(name))
    return tuple(out)


def _text(data: Mapping[str, Any], key: str, at: str) -> str:
    value = data.get(key)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise RuleError(f"{at}: {key}: expected text, got {value!r}")
    return str(value)


def _texts(data: Mapping[str, Any], key: str, at: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise RuleError(f"{at}: {key}: expected a list of text")
    return tuple(str(v) for v in value)


def _bool(data: Mapping[str, Any], key: str, at: str) -> bool:
    value = data.get(key, True)
    if not isinstance(value, bool):
        raise RuleError(f"{at}: {key}: expected true or false, got {value!r}")
    return value


def _mapping(value: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RuleError(f"{where}: expected a mapping with {', '.join(known)}")
    for key in value:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise RuleError(f"{where}.{key}: unknown key{hint}")
    return value


def _threshold(value: Any, where: str) -> Threshold | None:
    if value is None:
        return None
    data = _mapping(value, where, ("count", "window", "by"))
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise RuleError(f"{where}.count: expected a whole number of at least 1, got {count!r}")
    window = parse_duration(data.get("window"), f"{where}.window")
    by = _fields(_texts(data, "by", where), f"{where}.by")
    return Threshold(count, window, by)


def _audit_errors(value: Any, where: str) -> int | None:
    """``audit_errors: N`` (or ``true`` for 1): the least increase of the counter reported."""
    if value is None:
        return None
    if value is True:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RuleError(f"{where}: expected true or a whole number of at least 1, got {value!r}")
    return value


def _first_seen(value: Any, where: str) -> FirstSeen | None:
    if value is None:
        return None
    data = _mapping(value, where, ("fields", "learn"))
    names = _fields(_texts(data, "fields", where), f"{where}.fields")
    if not names:
        raise RuleError(f"{where}.fields: name at least one field")
    return FirstSeen(names, parse_duration(data.get("learn", "7d"), f"{where}.learn"))


def _needs(value: Any, where: str) -> Needs:
    if value is None:
        return Needs()
    data = _mapping(value, where, ("level", "stages", "requests"))
    level = str(data.get("level", "Metadata"))
    if level not in LEVELS[1:]:
        raise RuleError(f"{where}.level: {level!r} is not one of {', '.join(LEVELS[1:])}")
    stages = _texts(data, "stages", where) or ("ResponseComplete",)
    for stage in stages:
        if stage not in STAGES:
            raise RuleError(f"{where}.stages: {stage!r} is not one of {', '.join(STAGES)}")
    requests = []
    for i, item in enumerate(data.get("requests") or []):
        known = ("verb", "resource", "group", "subresource", "namespace", "user")
        req = _mapping(item, f"{where}.requests[{i}]", known)
        if not req.get("verb") or not req.get("resource"):
            raise RuleError(f"{where}.requests[{i}]: verb and resource are required")
        requests.append(NeededRequest(**{k: str(v) for k, v in req.items()}))
    return Needs(level, stages, tuple(requests))
