"""Fields kubetrail derives from an event: actor kind, service account, exec command, finality.

Each function works on one value and is small enough to be read as the definition of its column.
"""

from __future__ import annotations

import shlex
from urllib.parse import parse_qsl, urlsplit

SA_PREFIX = "system:serviceaccount:"
NODE_PREFIX = "system:node:"
ANONYMOUS = "system:anonymous"

FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})


def actor_kind(username: str | None) -> str:
    """Classify the authenticated user.

    Returns:
        ``anonymous`` (no identity, or ``system:anonymous``), ``serviceaccount``, ``node``,
        ``system`` (other ``system:`` identities: controllers, the scheduler, the API server
        itself) or ``human`` (everything else: people and external automation).
    """
    if not username or username == ANONYMOUS:
        return "anonymous"
    if username.startswith(SA_PREFIX):
        return "serviceaccount"
    if username.startswith(NODE_PREFIX):
        return "node"
    if username.startswith("system:"):
        return "system"
    return "human"


def service_account(username: str | None) -> tuple[str | None, str | None]:
    """Split ``system:serviceaccount:<namespace>:<name>`` into (namespace, name)."""
    if not username or not username.startswith(SA_PREFIX):
        return None, None
    namespace, sep, name = username[len(SA_PREFIX) :].partition(":")
    if not sep or not namespace or not name:
        return None, None
    return namespace, name


def exec_command(request_uri: str) -> str | None:
    """The command of an exec request, from the ``command=`` parameters of its URI.

    ``/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=ls%20-la`` gives
    ``sh -c 'ls -la'`` (arguments joined and quoted as a shell would need them).
    """
    query = urlsplit(request_uri).query
    if "command=" not in query:
        return None
    args = [value for key, value in parse_qsl(query, keep_blank_values=True) if key == "command"]
    if not args:
        return None
    return shlex.join(args)


def is_final(stage: str, code: int | None, username: str | None) -> bool:
    """Whether this stage closes its request, so that counting final stages counts requests.

    ``ResponseComplete`` and ``Panic`` close a request. A ``ResponseStarted`` is followed by a
    ``ResponseComplete`` except when authentication failed (code 401, no user): the API server
    then writes that one event only.
    """
    if stage in FINAL_STAGES:
        return True
    return stage == "ResponseStarted" and (code == 401 or not username)
