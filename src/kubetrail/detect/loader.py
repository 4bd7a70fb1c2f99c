"""The rule set: the built-in pack plus the user's rule directories, overrides and variables.

A user rule whose ``id`` is a built-in rule's id overrides that rule key by key: a file with
just ``id`` and ``enabled: false`` disables it, one with ``id`` and ``severity`` re-grades it, a
full rule replaces it. Variables (allow-lists such as ``ci_identities``) come from the pack's
``variables.yaml``; the configuration replaces them by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import RuleError
from .rules import Rule, parse_rule

#: The built-in rule pack: one rule per file, ``<area>_<what>.yaml``.
PACK_DIR = Path(__file__).with_name("rules")
VARIABLES_FILE = Path(__file__).with_name("variables.yaml")


@dataclass(frozen=True)
class RuleSet:
    """The loaded rules (built-in and user) and the variables they were expanded with."""

    rules: tuple[Rule, ...]
    variables: Mapping[str, list[str]]

    @property
    def enabled(self) -> list[Rule]:
        """The enabled rules."""
        return [r for r in self.rules if r.enabled]

    def get(self, rule_id: str) -> Rule | None:
        """The rule with this id, or ``None``."""
        return next((r for r in self.rules if r.id == rule_id), None)


def default_variables() -> dict[str, list[str]]:
    """The pack's variables (``variables.yaml``)."""
    data = yaml.safe_load(VARIABLES_FILE.read_text(encoding="utf-8")) or {}
    return {str(k): [str(v) for v in (vals or [])] for k, vals in data.items()}


def load_ruleset(
    dirs: Iterable[str | Path] = (),
    *,
    builtin: bool = True,
    disabled: Iterable[str] = (),
    variables: Mapping[str, list[str]] | None = None,
    environments: Mapping[str, Sequence[str]] | None = None,
) -> RuleSet:
    """Load the built-in pack and the rule files (``*.yaml``, ``*.yml``) of ``dirs``.

    Args:
        dirs: directories (or single files) of user rules, read in order.
        builtin: include the built-in pack. Default ``True``.
        disabled: ids of rules to disable.
        variables: values that replace the pack's variables of the same name.
        environments: environment -> clusters of the configuration, which resolves
            ``environment=NAME`` in filters; ``None`` (no configuration) matches no cluster.

    Raises:
        RuleError: a file or rule is invalid, an id is repeated within the user's files, or a
            disabled id names no rule.
    """
    values = default_variables()
    values.update({k: list(v) for k, v in (variables or {}).items()})
    raw: dict[str, tuple[dict[str, Any], str]] = {}
    if builtin:
        for path in sorted(PACK_DIR.glob("*.yaml")):
            for item in _items(path):
                raw[str(item.get("id"))] = (item, str(path))
    seen_user: dict[str, str] = {}
    for base in dirs:
        for path in _rule_files(Path(base)):
            for item in _items(path):
                rule_id = str(item.get("id", ""))
                if rule_id in seen_user:
                    raise RuleError(
                        f"{path}: rule {rule_id}: id: also defined in {seen_user[rule_id]}"
                    )
                seen_user[rule_id] = str(path)
                if rule_id in raw:
                    base_item, _ = raw[rule_id]
                    raw[rule_id] = ({**base_item, **item}, str(path))
                else:
                    raw[rule_id] = (item, str(path))
    rules = [parse_rule(item, where, values, 0, environments) for item, where in raw.values()]
    off = set(disabled)
    unknown = off - {r.id for r in rules}
    if unknown:
        raise RuleError(f"detect.disabled: no rule has the id {', '.join(sorted(unknown))}")
    rules = [_disabled(r) if r.id in off else r for r in rules]
    return RuleSet(tuple(sorted(rules, key=lambda r: r.id)), values)


def _disabled(rule: Rule) -> Rule:
    from dataclasses import replace

    return replace(rule, enabled=False)


def _rule_files(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    if not base.is_dir():
        raise RuleError(f"{base}: no such rule file or directory")
    return sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _items(path: Path) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"rules"} and isinstance(data["rules"], list):
        items = data["rules"]
    elif isinstance(data, dict):
        items = [data]
    else:
        raise RuleError(f"{path}: expected a rule (a mapping) or 'rules:' with a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RuleError(f"{path}: rules[{i}]: expected a mapping")
        if not item.get("id"):
            raise RuleError(f"{path}: rules[{i}]: id: missing (required)")
    return items
