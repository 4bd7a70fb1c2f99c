"""``environment`` in rule filters: resolved to the clusters the configuration labels with it.

Events carry their cluster, not their environment: the environment is a label of the cluster
in ``server.clusters[]``. So a rule's ``environment=production`` (or ``env=production``) is
rewritten, when the rule is loaded, into ``cluster in ("prod-eu", "prod-us")`` with the
clusters of the configuration; the query language itself never sees the word. Supported forms:
``environment=NAME`` (``*`` wildcards), ``environment:NAME`` (case-insensitive),
``environment!=NAME`` and ``environment [not] in (A, B)``. Without a configuration (``rules
lint`` on a laptop) every environment has no cluster, so such a term matches nothing (like an
empty variable); with one, a name that matches no configured environment is an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

from lark import Token, Tree, UnexpectedInput

from ..config import ServerConfig
from ..errors import RuleError
from ..query.parser import _lark
from ..query.values import BadValue, unescape

#: The words a filter may use for the environment.
NAMES = ("environment", "env")


def environment_clusters(server: ServerConfig) -> dict[str, list[str]]:
    """Each environment label of the configured clusters, with its clusters (sorted)."""
    out: dict[str, list[str]] = {}
    for cluster in server.clusters:
        if cluster.environment:
            out.setdefault(cluster.environment, []).append(cluster.name)
    return {env: sorted(names) for env, names in sorted(out.items())}


def cluster_environments(server: ServerConfig) -> dict[str, str]:
    """Each configured cluster's environment label (clusters without one are left out)."""
    return {c.name: c.environment for c in server.clusters if c.environment}


def expand_environments(
    text: str, environments: Mapping[str, Sequence[str]] | None, where: str
) -> str:
    """Rewrite the ``environment`` terms of a filter into ``cluster`` terms.

    Args:
        text: the filter (variables already expanded).
        environments: environment -> clusters; ``None`` when no configuration is known.
        where: the file/rule/key, for error messages.

    Raises:
        RuleError: an operator other than ``=``, ``:``, ``!=`` or ``in``, or (with a
            configuration) an environment name that no configured cluster has.
    """
    if not any(name in text.lower() for name in NAMES):
        return text
    try:
        tree = _lark().parse(text)
    except UnexpectedInput:
        return text  # the query parser reports the syntax error with its column
    edits: list[tuple[int, int, str]] = []
    for node in tree.iter_subtrees():
        if node.data not in ("compare", "in_list"):
            continue
        field = node.children[0]
        if not isinstance(field, Token) or str(field).lower() not in NAMES:
            continue
        edits.append((node.meta.start_pos, node.meta.end_pos, _rewrite(node, environments, where)))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _rewrite(node: Tree, environments: Mapping[str, Sequence[str]] | None, where: str) -> str:
    known = dict(environments or {})
    if node.data == "compare":
        _, op_token, value = node.children
        op = str(op_token)
        if op not in ("=", ":", "!="):
            raise RuleError(
                f"{where}: environment {op}: use environment=NAME, environment!=NAME or "
                "environment in (A, B)"
            )
        values, negated = [_value(value, where)], op == "!="
        fold = op == ":"
    else:
        _, negation, *value_trees = node.children
        values, negated, fold = [_value(v, where) for v in value_trees], negation is not None, False
    clusters: set[str] = set()
    for pattern in values:
        matched = [env for env in known if _matches(pattern, env, fold)]
        if environments is not None and not matched:
            near = difflib.get_close_matches(pattern, list(known), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            names = ", ".join(known) or "none configured"
            raise RuleError(
                f"{where}: no configured cluster has environment '{pattern}'{hint} "
                f"(environments: {names})"
            )
        for env in matched:
            clusters.update(known[env])
    listed = ", ".join(_quote(c) for c in sorted(clusters)) or '""'
    return f"(not cluster in ({listed}))" if negated else f"cluster in ({listed})"


def _value(tree: Tree, where: str) -> str:
    token = tree.children[0]
    assert isinstance(token, Token)
    raw = str(token)
    body = raw[1:-1] if token.type == "STRING" else raw
    try:
        return unescape(body).text
    except BadValue as exc:
        raise RuleError(f"{where}: environment: {exc}") from None


def _matches(pattern: str, env: str, fold: bool) -> bool:
    regex = ".*".join(re.escape(p) for p in pattern.split("*"))
    return re.fullmatch(regex, env, re.IGNORECASE if fold else 0) is not None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*") + '"'
