"""Which clusters a page or API call looks at: one cluster, an environment, or all.

The cluster selector of the UI and the ``cluster`` parameter of ``/api`` take a cluster name or
``env:NAME``, the clusters that ``server.clusters[]`` labels with ``environment: NAME`` (issue 9:
production and development are looked at apart). ``/api`` also takes ``environment=NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import ServerConfig
from ..errors import UsageError

ENV_PREFIX = "env:"


def environments(config: ServerConfig) -> list[str]:
    """The environment labels of the configured clusters, sorted."""
    return sorted({c.environment for c in config.clusters if c.environment})


def resolve_scope(config: ServerConfig, selection: str | None) -> str | list[str] | None:
    """The cluster filter of a selection: ``None`` (all), a name, or an environment's clusters.

    Raises:
        UsageError: ``env:NAME`` names an environment no configured cluster has.
    """
    if not selection:
        return None
    if not selection.startswith(ENV_PREFIX):
        return selection
    name = selection.removeprefix(ENV_PREFIX)
    members = sorted(c.name for c in config.clusters if c.environment == name)
    if not members:
        known = ", ".join(environments(config)) or "none configured"
        raise UsageError(f"no cluster has environment '{name}' (environments: {known})")
    return members


def selection_of(params: Mapping[str, str]) -> str | None:
    """The selection in query parameters: ``cluster=`` or, for ``/api``, ``environment=``."""
    if env := params.get("environment"):
        if params.get("cluster"):
            raise UsageError("give either cluster or environment, not both")
        return ENV_PREFIX + env
    return params.get("cluster") or None
