"""The normalised columns of an audit event: the contract between the model, the store and the
query compiler.

Every batch of decoded events becomes one Arrow table with exactly :data:`EVENT_SCHEMA`. The
store keeps these columns as they are; the query compiler addresses them by these names. Absent
values are nulls (never empty strings), so ``exists(field)`` means "is not null".

Timestamps are UTC, microsecond precision, without a zone attached (naive ``TIMESTAMP``): the
engines then need no time-zone database, which matters for offline clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

_TS = pa.timestamp("us")
_STRINGS = pa.list_(pa.string())


@dataclass(frozen=True)
class Column:
    """One normalised column.

    Attributes:
        name: the column name in Arrow batches and in the store.
        type: its Arrow type.
        path: the Event JSON path it comes from (``objectRef.resource``), or ``None`` for a
            column that kubetrail derives or adds.
        doc: one line for the documentation.
    """

    name: str
    type: pa.DataType
    path: str | None
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("cluster", pa.string(), None, "cluster the event came from (set by the ingest side)"),
    Column("audit_id", pa.string(), "auditID", "unique id of the request"),
    Column(
        "stage", pa.string(), "stage", "RequestReceived, ResponseStarted, ResponseComplete or Panic"
    ),
    Column(
        "is_final",
        pa.bool_(),
        None,
        "true for the stage that closes a request (ResponseComplete, Panic, or a ResponseStarted "
        "that nothing follows: failed authentication)",
    ),
    Column("level", pa.string(), "level", "audit level the event was recorded at"),
    Column(
        "verb", pa.string(), "verb", "kube verb, or lower-case HTTP method for non-resource URLs"
    ),
    Column("request_uri", pa.string(), "requestURI", "path and query as sent"),
    Column("username", pa.string(), "user.username", "authenticated user name"),
    Column("user_uid", pa.string(), "user.uid", "authenticated user uid"),
    Column("user_groups", _STRINGS, "user.groups", "authenticated user's groups"),
    Column(
        "actor_kind",
        pa.string(),
        None,
        "human, serviceaccount, node, system or anonymous (derived from the user)",
    ),
    Column("sa_namespace", pa.string(), None, "namespace of a service-account user"),
    Column("sa_name", pa.string(), None, "name of a service-account user"),
    Column("impersonated_user", pa.string(), "impersonatedUser.username", "impersonated user name"),
    Column(
        "impersonated_groups", _STRINGS, "impersonatedUser.groups", "impersonated user's groups"
    ),
    Column("source_ips", _STRINGS, "sourceIPs", "client addresses, nearest last"),
    Column("user_agent", pa.string(), "userAgent", "the client's User-Agent"),
    Column("api_group", pa.string(), "objectRef.apiGroup", "API group; null for core"),
    Column("api_version", pa.string(), "objectRef.apiVersion", "API version of the object"),
    Column("resource", pa.string(), "objectRef.resource", "resource (plural)"),
    Column("subresource", pa.string(), "objectRef.subresource", "subresource (exec, status, ...)"),
    Column("namespace", pa.string(), "objectRef.namespace", "namespace of the object"),
    Column("name", pa.string(), "objectRef.name", "name of the object"),
    Column("response_code", pa.int32(), "responseStatus.code", "HTTP status code"),
    Column(
        "response_reason",
        pa.string(),
        "responseStatus.reason",
        "Status reason (Forbidden, NotFound, ...)",
    ),
    Column(
        "decision",
        pa.string(),
        'annotations."authorization.k8s.io/decision"',
        "authorization decision: allow or forbid",
    ),
    Column(
        "decision_reason",
        pa.string(),
        'annotations."authorization.k8s.io/reason"',
        "authorizer's reason",
    ),
    Column(
        "request_received",
        _TS,
        "requestReceivedTimestamp",
        "when the API server received the request (v1beta1: `timestamp` when absent)",
    ),
    Column("stage_time", _TS, "stageTimestamp", "when this stage was reached"),
    Column("latency_ms", pa.float64(), None, "stage_time - request_received, in milliseconds"),
    Column(
        "command",
        pa.string(),
        None,
        "command of an exec/attach request, decoded from the requestURI's command= parameters",
    ),
    Column("redacted", pa.bool_(), None, "true when Secret values were removed before storage"),
    Column("event_version", pa.string(), "apiVersion", "audit.k8s.io/v1 or audit.k8s.io/v1beta1"),
    Column("source", pa.string(), None, "where kubetrail got the event (file path, webhook, ...)"),
    Column("batch_id", pa.string(), None, "id of the ingest batch that stored the event"),
    Column("raw", pa.string(), None, "the original event JSON (after redaction)"),
    # Last: stores created before it gained the column at the end (ALTER TABLE ADD COLUMN).
    Column(
        "audit_key",
        pa.uint64(),
        None,
        "first 8 bytes of the auditID's MD5 (little-endian): makes lookups by id fast",
    ),
)

EVENT_SCHEMA: pa.Schema = pa.schema([pa.field(c.name, c.type) for c in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

#: Stages of one request, in the order the API server emits them.
STAGES: tuple[str, ...] = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
#: Audit levels, lowest first.
LEVELS: tuple[str, ...] = ("None", "Metadata", "Request", "RequestResponse")
#: Actor kinds of the ``actor_kind`` column.
ACTOR_KINDS: tuple[str, ...] = ("human", "serviceaccount", "node", "system", "anonymous")

#: Columns computed from other columns or from the ingest context, not read from the event.
DERIVED_COLUMNS: frozenset[str] = frozenset(
    {
        "cluster",
        "is_final",
        "actor_kind",
        "sa_namespace",
        "sa_name",
        "latency_ms",
        "command",
        "source",
        "batch_id",
        "audit_key",
    }
)
#: The columns read from the event itself (both decoding paths produce exactly these).
BASE_SCHEMA: pa.Schema = pa.schema([f for f in EVENT_SCHEMA if f.name not in DERIVED_COLUMNS])
