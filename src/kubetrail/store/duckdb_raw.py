"""The fast path's insert: DuckDB extracts an event's columns from its raw JSON.

A raw batch (:data:`kubetrail.model.rawbatch.RAW_SCHEMA`) holds events that the reference
path already decoded, validated and redacted; what it lacks are the columns that
:mod:`kubetrail.model.normalize` would build in Python. One ``INSERT ... SELECT`` parses each
raw JSON with ``json_transform`` (DuckDB's native reader, in C++, on every core), applies the
reference path's rules, derives the derived columns and skips the events already stored: the
same rows as the reference path, at a fraction of its cost.

The rules mirrored from the reference path (``model/normalize.py``, ``model/derive.py``):

* empty strings and empty lists of the user, the impersonated user, ``sourceIPs``,
  ``userAgent``, ``objectRef`` and ``responseStatus.reason`` become nulls; the authorization
  annotations keep ``""`` (an allowed request with no reason); ``responseStatus.code`` keeps 0;
* ``actor_kind``, ``sa_namespace``/``sa_name`` (the reference's pattern, by splitting),
  ``is_final`` and ``latency_ms`` as in :mod:`kubetrail.model.derive`;
* ``audit_key`` with ``md5_number_upper``, the same number as ``derive.audit_key`` (a test
  keeps them equal).

The field values were type-checked by msgspec before (a field of the wrong type never gets
here). One difference remains, for JSON that RFC 8259 calls unpredictable: in an object that
repeats a member name, DuckDB reads the first occurrence and msgspec the last.

The SQL is fixed text; the batch's values travel as parameters.
"""

from __future__ import annotations

import json

from ..model.schema import COLUMN_NAMES
from .base import EVENTS_TABLE
from .raw_sql import aliased, event_columns

_IS_SA = (
    "starts_with(x.username, 'system:serviceaccount:') "
    "AND len(string_split(x.username, ':')) = 4 "
    "AND split_part(x.username, ':', 3) <> '' AND split_part(x.username, ':', 4) <> ''"
)

#: The fields ``json_transform`` reads, with their DuckDB types (only these are parsed out).
SHAPE: dict[str, object] = {
    "level": "VARCHAR",
    "verb": "VARCHAR",
    "requestURI": "VARCHAR",
    "user": {"username": "VARCHAR", "uid": "VARCHAR", "groups": ["VARCHAR"]},
    "impersonatedUser": {"username": "VARCHAR", "groups": ["VARCHAR"]},
    "sourceIPs": ["VARCHAR"],
    "userAgent": "VARCHAR",
    "objectRef": {
        "apiGroup": "VARCHAR",
        "apiVersion": "VARCHAR",
        "resource": "VARCHAR",
        "subresource": "VARCHAR",
        "namespace": "VARCHAR",
        "name": "VARCHAR",
    },
    "responseStatus": {"code": "INTEGER", "reason": "VARCHAR"},
    "annotations": {
        "authorization.k8s.io/decision": "VARCHAR",
        "authorization.k8s.io/reason": "VARCHAR",
    },
}


def _empty_null(expr: str) -> str:
    return f"nullif({expr}, '')"


def _empty_list_null(expr: str) -> str:
    return f"CASE WHEN len({expr}) = 0 THEN NULL ELSE {expr} END"


# The base columns read from the JSON, with the reference path's empty-value rules.
_EXTRACTED = {
    "level": "e.level",
    "verb": "e.verb",
    "request_uri": "e.requestURI",
    "username": _empty_null("e.user.username"),
    "user_uid": _empty_null("e.user.uid"),
    "user_groups": _empty_list_null("e.user.groups"),
    "impersonated_user": _empty_null("e.impersonatedUser.username"),
    "impersonated_groups": _empty_list_null("e.impersonatedUser.groups"),
    "source_ips": _empty_list_null("e.sourceIPs"),
    "user_agent": _empty_null("e.userAgent"),
    "api_group": _empty_null("e.objectRef.apiGroup"),
    "api_version": _empty_null("e.objectRef.apiVersion"),
    "resource": _empty_null("e.objectRef.resource"),
    "subresource": _empty_null("e.objectRef.subresource"),
    "namespace": _empty_null("e.objectRef.namespace"),
    "name": _empty_null("e.objectRef.name"),
    "response_code": "e.responseStatus.code",
    "response_reason": _empty_null("e.responseStatus.reason"),
    "decision": """e.annotations."authorization.k8s.io/decision\"""",
    "decision_reason": """e.annotations."authorization.k8s.io/reason\"""",
}

# The derived and constant columns, computed from the extracted ones (``x``).
_DERIVED = {
    "cluster": "$cluster",
    "is_final": (
        "x.stage IN ('ResponseComplete', 'Panic') OR (x.stage = 'ResponseStarted' "
        "AND (coalesce(x.response_code = 401, false) OR x.username IS NULL))"
    ),
    "actor_kind": (
        "CASE WHEN x.username IS NULL OR x.username = 'system:anonymous' THEN 'anonymous' "
        "WHEN starts_with(x.username, 'system:serviceaccount:') THEN 'serviceaccount' "
        "WHEN starts_with(x.username, 'system:node:') THEN 'node' "
        "WHEN starts_with(x.username, 'system:') THEN 'system' ELSE 'human' END"
    ),
    # ``^system:serviceaccount:([^:]+):([^:]+)$`` without a regular expression (3x cheaper):
    # the prefix, then exactly two non-empty parts.
    "sa_namespace": f"CASE WHEN {_IS_SA} THEN split_part(x.username, ':', 3) END",
    "sa_name": f"CASE WHEN {_IS_SA} THEN split_part(x.username, ':', 4) END",
    "latency_ms": "(epoch_us(x.stage_time) - epoch_us(x.request_received))::DOUBLE / 1000.0",
    "source": "$source",
    "batch_id": "$batch_id",
    "audit_key": "md5_number_upper(x.audit_id)",
}

#: Whether any event of ``$cluster`` is stored with a stage time in ``[$lo, $hi]``.
STORED_IN_RANGE = f"""
SELECT 1 FROM {EVENTS_TABLE}
WHERE cluster = $cluster AND stage_time BETWEEN $lo AND $hi
LIMIT 1
"""

_ANTI_JOIN = f"""
        ANTI JOIN (
            SELECT audit_id, stage, request_received FROM {EVENTS_TABLE}
            WHERE cluster = $cluster AND stage_time BETWEEN $lo AND $hi
        ) AS s
        ON b.audit_id = s.audit_id AND b.stage = s.stage
           AND b.request_received = s.request_received"""

_PASSED = ("audit_id", "stage", "request_received", "stage_time", "event_version", "command")


def insert_sql(batch_view: str, *, dedupe: bool = True) -> str:
    """The statement that inserts the new events of the raw batch registered as ``batch_view``.

    Parameters: ``$cluster``, ``$source``, ``$batch_id``, and ``$lo``/``$hi``, the batch's
    stage-time range (duplicates share the stage time, so only stored rows in that range are
    compared: DuckDB skips the row groups outside it).

    With ``dedupe=False`` the statement inserts every row and takes no ``$lo``/``$hi``: for
    when the caller found no stored row of the cluster in that range (:data:`STORED_IN_RANGE`),
    where the comparison could not remove anything and costs about a fifth of the INSERT.
    """
    shape = json.dumps(SHAPE, separators=(",", ":"))
    extracted = aliased(_EXTRACTED)
    passed = ", ".join(f"b.{name}" for name in _PASSED)
    select = event_columns(_DERIVED)
    return f"""
INSERT INTO {EVENTS_TABLE} ({", ".join(COLUMN_NAMES)})
SELECT
    {select}
FROM (
    SELECT {passed}, b.redacted, b.raw,
        {extracted}
    FROM (
        SELECT b.*, json_transform(b.raw, '{shape}') AS e
        FROM {batch_view} AS b{_ANTI_JOIN if dedupe else ""}
    ) AS b
) AS x
"""
