"""The fast path's insert on ClickHouse: the server extracts an event's columns from its raw JSON.

A raw batch (:data:`kubetrail.model.rawbatch.RAW_SCHEMA`) holds events that the reference path
already decoded, validated and redacted. Each piece of it (one partition and shard, see
:mod:`.clickhouse_pieces`) is sent as one Arrow record batch to
``INSERT INTO events SELECT <expressions> FROM input('<raw columns>') FORMAT ArrowStream``: the
server parses each JSON once (``JSONExtract`` into a named tuple) and builds the columns that
:mod:`kubetrail.model.normalize` would build in Python. ``input()`` reads the body's record batch
as one block and the SELECT maps it row for row, so with squashing off a piece is still one block
under its own token (``tests/clickhouse/test_fast_path_on_clickhouse.py`` checks it).

The rules mirror :mod:`kubetrail.store.duckdb_raw` (and so the reference path):

* empty strings of the user, the impersonated user, ``userAgent``, ``objectRef`` and
  ``responseStatus.reason`` become nulls; the authorization annotations keep ``""``;
  ``responseStatus.code`` keeps 0;
* lists are ``Array(String)``, which ClickHouse stores empty for null as the reference path's
  inserts do (and reads back as null, :mod:`.clickhouse_arrow`);
* ``actor_kind``, ``sa_namespace``/``sa_name`` (by splitting, as on DuckDB), ``is_final`` and
  ``latency_ms`` as in :mod:`kubetrail.model.derive`;
* ``audit_key``: the first 8 bytes of the auditID's MD5 read little-endian
  (``reinterpretAsUInt64(MD5(...))``), the number of ``derive.audit_key``.

As on DuckDB, an object that repeats a member name is read at its first occurrence here and at
its last by msgspec (JSON that RFC 8259 calls unpredictable). The SQL is fixed text; cluster,
source and batch id travel as query parameters.
"""

from __future__ import annotations

import pyarrow as pa

from ..model.rawbatch import RAW_SCHEMA
from ..model.schema import COLUMN_NAMES
from .raw_sql import aliased, event_columns

_S = "Nullable(String)"
#: The fields the server reads out of each JSON, as one named tuple (one parse per event).
SHAPE = (
    f"Tuple(level {_S}, verb {_S}, requestURI {_S}, "
    f"user Tuple(username {_S}, uid {_S}, groups Array(String)), "
    f"impersonatedUser Tuple(username {_S}, groups Array(String)), "
    f"sourceIPs Array(String), userAgent {_S}, "
    f"objectRef Tuple(apiGroup {_S}, apiVersion {_S}, resource {_S}, subresource {_S}, "
    f"namespace {_S}, name {_S}), "
    f"responseStatus Tuple(code Nullable(Int32), reason {_S}), "
    f"annotations Tuple(`authorization.k8s.io/decision` {_S}, "
    f"`authorization.k8s.io/reason` {_S}))"
)

#: The raw batch's columns as ``input()`` reads them (times: microseconds since the epoch, UTC).
INPUT_STRUCTURE = (
    "audit_id String, stage String, request_received DateTime64(6, 'UTC'), "
    "stage_time Nullable(DateTime64(6, 'UTC')), event_version Nullable(String), "
    "command Nullable(String), redacted Nullable(Bool), raw String"
)


def _field(*path: str) -> str:
    return "e" + "".join(f".`{p}`" for p in path)


def _empty_null(expr: str) -> str:
    return f"nullIf({expr}, '')"


# The base columns read from the JSON, with the reference path's empty-value rules.
_EXTRACTED = {
    "level": _field("level"),
    "verb": _field("verb"),
    "request_uri": _field("requestURI"),
    "username": _empty_null(_field("user", "username")),
    "user_uid": _empty_null(_field("user", "uid")),
    "user_groups": _field("user", "groups"),
    "impersonated_user": _empty_null(_field("impersonatedUser", "username")),
    "impersonated_groups": _field("impersonatedUser", "groups"),
    "source_ips": _field("sourceIPs"),
    "user_agent": _empty_null(_field("userAgent")),
    "api_group": _empty_null(_field("objectRef", "apiGroup")),
    "api_version": _empty_null(_field("objectRef", "apiVersion")),
    "resource": _empty_null(_field("objectRef", "resource")),
    "subresource": _empty_null(_field("objectRef", "subresource")),
    "namespace": _empty_null(_field("objectRef", "namespace")),
    "name": _empty_null(_field("objectRef", "name")),
    "response_code": _field("responseStatus", "code"),
    "response_reason": _empty_null(_field("responseStatus", "reason")),
    "decision": _field("annotations", "authorization.k8s.io/decision"),
    "decision_reason": _field("annotations", "authorization.k8s.io/reason"),
}

_PARTS = "splitByChar(':', x.username)"
_IS_SA = (
    "startsWith(x.username, 'system:serviceaccount:') "
    f"AND length({_PARTS}) = 4 AND {_PARTS}[3] != '' AND {_PARTS}[4] != ''"
)

# The derived and constant columns, computed from the extracted ones (``x``).
_DERIVED = {
    "cluster": "{cluster:String}",
    "is_final": (
        "x.stage IN ('ResponseComplete', 'Panic') OR (x.stage = 'ResponseStarted' "
        "AND (coalesce(x.response_code = 401, false) OR x.username IS NULL))"
    ),
    "actor_kind": (
        "multiIf(x.username IS NULL OR x.username = 'system:anonymous', 'anonymous', "
        "startsWith(x.username, 'system:serviceaccount:'), 'serviceaccount', "
        "startsWith(x.username, 'system:node:'), 'node', "
        "startsWith(x.username, 'system:'), 'system', 'human')"
    ),
    "sa_namespace": f"if({_IS_SA}, {_PARTS}[3], NULL)",
    "sa_name": f"if({_IS_SA}, {_PARTS}[4], NULL)",
    "latency_ms": (
        "toFloat64(toUnixTimestamp64Micro(x.stage_time) "
        "- toUnixTimestamp64Micro(x.request_received)) / 1000.0"
    ),
    "source": "{source:String}",
    "batch_id": "{batch_id:String}",
    "audit_key": "reinterpretAsUInt64(MD5(x.audit_id))",
}

_PASSED = ("audit_id", "stage", "request_received", "stage_time", "event_version", "command")
_PASSED += ("redacted", "raw")


def insert_sql(target: str) -> str:
    """The statement that inserts one piece of a raw batch, sent as its body, into ``target``.

    Parameters: ``cluster``, ``source`` and ``batch_id`` (``{name:String}``).
    """
    structure = INPUT_STRUCTURE.replace("'", "\\'")
    extracted = aliased(_EXTRACTED)
    select = event_columns(_DERIVED)
    return f"""INSERT INTO {target} ({", ".join(COLUMN_NAMES)})
SELECT
    {select}
FROM (
    SELECT {", ".join(_PASSED)},
        {extracted}
    FROM (
        SELECT *, JSONExtract(raw, '{SHAPE}') AS e
        FROM input('{structure}')
    )
) AS x
FORMAT ArrowStream"""


def body(rows: pa.Table, compression: str | None = None) -> bytes:
    """One piece's rows as the INSERT's body: one Arrow stream of ONE record batch.

    ``compression``: ``lz4`` or ``zstd`` compresses the stream's buffers, as clickhouse-connect's
    ``insert_arrow`` does with the client's ``write_compression``. The raw JSON is most of a
    piece and compresses about 6x with LZ4: sending 42 MB instead of 6.5 MB per 32,768 demo
    events cost the collector 0.20 s of CPU instead of 0.03 (docs/scale-out.md, issue 8e).
    """
    table = rows.select(RAW_SCHEMA.names).cast(RAW_SCHEMA).combine_chunks()
    batches = table.to_batches()
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, RAW_SCHEMA, options=options) as writer:
        if len(batches) == 1:
            writer.write_batch(batches[0])
        else:  # combine_chunks made one chunk; an empty table has none
            writer.write_table(table)
    return sink.getvalue().to_pybytes()
