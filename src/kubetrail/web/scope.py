"""Which clusters a page or API call looks at: one cluster, an environment, or all.

The cluster selector of the UI and the ``cluster`` parameter of ``/api`` take a cluster name or
``env:NAME``, the clusters that ``server.clusters[]`` labels with ``environment: NAME`` (issue 9:
production and development are looked at apart). ``/api`` also takes ``environment=NAME``.
:func:`read_scope` also says which store file to read: clusters may write to files of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config import ServerConfig
from ..errors import UsageError
from ..store.base import Store

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


@dataclass(frozen=True)
class StoredApart:
    """A cluster whose events are in a store file that a read of "all clusters" left out."""

    cluster: str
    environment: str
    store: str

    def as_dict(self) -> dict[str, str]:
        """What ``/api`` answers in ``not_included``: the cluster and how to select it."""
        select = f"environment={self.environment}" if self.environment else ""
        return {
            "cluster": self.cluster,
            "environment": self.environment,
            "store": self.store,
            "select": f"cluster={self.cluster}" + (f" or {select}" if select else ""),
        }


@dataclass(frozen=True)
class ReadScope:
    """Where a page or API call reads and what it filters on.

    Attributes:
        store: the store file that holds the selected clusters (for "all": ``server.db``).
        clusters: the cluster filter (``None``: all, a name, or an environment's clusters).
        not_included: with "all clusters", the clusters stored in files of their own, which
            the read does not include (select them by cluster or environment).
    """

    store: Store
    clusters: str | list[str] | None
    not_included: tuple[StoredApart, ...] = ()


def read_scope(config: ServerConfig, store: Store, selection: str | None) -> ReadScope:
    """The store to read and the cluster filter of a selection.

    A server whose clusters write to files of their own (``server.clusters[].store``) answers
    one cluster, or one environment, from the file that holds it. An environment whose clusters
    are in several files cannot be answered by one query: that is a usage error (400) naming
    the files and the clusters to select instead. "All clusters" reads ``server.db`` and lists
    the clusters it leaves out.

    Raises:
        UsageError: an unknown environment, or an environment spread over several files.
    """
    clusters = resolve_scope(config, selection)
    target = getattr(store, "target", None)
    if not callable(target):  # one store holds every cluster
        return ReadScope(store, clusters)
    main: Store = store.main  # type: ignore[attr-defined]
    if clusters is None:
        envs = {c.name: c.environment for c in config.clusters}
        apart = tuple(
            StoredApart(name, envs.get(name, ""), str(getattr(s, "path", "")))
            for name, s in sorted(store.by_cluster.items())  # type: ignore[attr-defined]
            if s is not main
        )
        return ReadScope(main, None, apart)
    if isinstance(clusters, str):
        return ReadScope(target(clusters), clusters)
    files: dict[int, tuple[Store, list[str]]] = {}
    for name in clusters:
        s = target(name)
        files.setdefault(id(s), (s, []))[1].append(name)
    if len(files) == 1:
        ((only, _),) = files.values()
        return ReadScope(only, clusters)
    where = "; ".join(
        f"{getattr(s, 'path', '?')}: {', '.join(names)}" for s, names in files.values()
    )
    raise UsageError(
        f"environment '{selection.removeprefix(ENV_PREFIX) if selection else ''}' is stored in "
        f"{len(files)} files ({where}); one query reads one file: select one cluster "
        f"(cluster=NAME) or give the environment's clusters one store"
    )


def event_stores(store: Store) -> list[Store]:
    """Every store file of the server, ``server.db`` first."""
    stores = getattr(store, "stores", None)
    return list(stores()) if callable(stores) else [store]
