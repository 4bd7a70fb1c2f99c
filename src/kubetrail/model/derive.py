"""Fields kubetrail derives from an event, computed on whole Arrow columns.

* ``actor_kind``: ``anonymous`` (no identity, or ``system:anonymous``), ``serviceaccount``,
  ``node``, ``system`` (other ``system:`` identities: controllers, the scheduler, the API server
  itself) or ``human`` (everything else: people and external automation).
* ``sa_namespace`` / ``sa_name``: the parts of ``system:serviceaccount:<namespace>:<name>``.
* ``is_final``: the stage that closes a request, so that counting final stages counts requests.
  ``ResponseComplete`` and ``Panic`` close a request. A ``ResponseStarted`` is followed by a
  ``ResponseComplete``, except when authentication failed (code 401, no user): the API server
  then writes that one event only.
* ``latency_ms``: ``stageTimestamp - requestReceivedTimestamp``.
* ``command``: the command of an exec request, from the ``command=`` parameters of its URI,
  joined as a shell would need it quoted.
* ``audit_key``: the first 8 bytes of the auditID's MD5 as an unsigned little-endian integer.
  A lookup by auditID compares this 8-byte column first (a fast scan; random UUID strings
  neither compress nor prune), then the string on the few rows that remain. It is not a
  security measure: ``audit_id`` is always compared too.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

SA_PREFIX = "system:serviceaccount:"
_SA_PATTERN = r"^system:serviceaccount:(?P<ns>[^:]+):(?P<name>[^:]+)$"


# Built on first use, not at import: ``pa.array`` of a list imports pandas when it is installed
# (to ask whether the list is a pandas object), about 36 MB that an import's main process,
# which leaves decoding to a child, never needs.
@functools.cache
def _final_stages() -> pa.Array:
    return pa.array(["ResponseComplete", "Panic"])


@functools.cache
def _exec_subresources() -> pa.Array:
    return pa.array(["exec", "attach"])


def actor_kind(username: pa.Array) -> pa.Array:
    """Classify each authenticated user name (see the module docstring)."""
    anonymous = pc.or_kleene(pc.is_null(username), pc.equal(username, "system:anonymous"))
    conditions = pc.make_struct(
        anonymous.fill_null(True),
        pc.starts_with(username, SA_PREFIX).fill_null(False),
        pc.starts_with(username, "system:node:").fill_null(False),
        pc.starts_with(username, "system:").fill_null(False),
        field_names=["a", "s", "n", "y"],
    )
    return pc.case_when(
        conditions,
        "anonymous",
        "serviceaccount",
        "node",
        "system",
        "human",
    )


def service_account(username: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Split ``system:serviceaccount:<namespace>:<name>`` into (namespace, name) columns."""
    parts = pc.extract_regex(username, _SA_PATTERN)
    valid = pc.is_valid(parts)
    namespace = pc.if_else(valid, pc.struct_field(parts, [0]), None)
    name = pc.if_else(valid, pc.struct_field(parts, [1]), None)
    return namespace, name


def is_final(stage: pa.Array, code: pa.Array, username: pa.Array) -> pa.Array:
    """Whether each event's stage closes its request (see the module docstring)."""
    failed_auth = pc.and_(
        pc.equal(stage, "ResponseStarted"),
        pc.or_kleene(pc.equal(code, 401), pc.is_null(username)).fill_null(False),
    )
    return pc.or_(pc.is_in(stage, value_set=_final_stages()), failed_auth.fill_null(False))


def audit_key(audit_id: str) -> int:
    """The ``audit_key`` of one auditID (see the module docstring)."""
    return int.from_bytes(hashlib.md5(audit_id.encode()).digest()[:8], "little")


def audit_keys(audit_id: pa.Array) -> pa.Array:
    """The ``audit_key`` of each event (null where the auditID is null)."""
    return pa.array(
        [None if a is None else audit_key(a) for a in audit_id.to_pylist()], pa.uint64()
    )


def latency_ms(received: pa.Array, stage_time: pa.Array) -> pa.Array:
    """Milliseconds from receipt of the request to this stage."""
    micros = pc.subtract(stage_time.cast(pa.int64()), received.cast(pa.int64()))
    return pc.divide(micros.cast(pa.float64()), 1000.0)


def commands(request_uri: pa.Array, subresource: pa.Array) -> pa.Array:
    """The exec/attach command of each event, null for every other request."""
    wanted = pc.is_in(subresource, value_set=_exec_subresources()).fill_null(False)
    rows = pc.indices_nonzero(wanted)
    values: list[str | None] = [None] * len(request_uri)
    for i, uri in zip(rows.to_pylist(), request_uri.take(rows).to_pylist(), strict=True):
        values[i] = exec_command(uri)
    return pa.array(values, pa.string())


def exec_command(request_uri: str) -> str | None:
    """The command of one exec request, from the ``command=`` parameters of its URI.

    ``/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=ls%20-la`` gives
    ``sh -c 'ls -la'``.
    """
    query = urlsplit(request_uri).query
    if "command=" not in query:
        return None
    args = [value for key, value in parse_qsl(query, keep_blank_values=True) if key == "command"]
    return shlex.join(args) if args else None
