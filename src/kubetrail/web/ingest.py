"""``POST /ingest/v1/events``: the webhook endpoint of the API server's audit backend.

Order of checks, cheapest first: credential (401/403), content type (415), declared length
(413), a place in the write queue (429, or 503 while draining), the body read with a limit
(413), parsed (400). The CPU work (gunzip, decode, normalise) runs in a worker thread; the
answer is sent once the batch is durable: in the spool on the embedded store
(:mod:`.spool_writer`), else after the writer thread's commit (:mod:`.writer`). Valid
events of a partly bad batch are stored, the others go to the quarantine file and are listed
in ``rejected``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ..config import LimitsConfig
from ..model.decode import Rejection
from ..model.normalize import normalize_records
from ..sources.webhook import (
    SOURCE,
    TOO_DEEP,
    BodyError,
    check_content_type,
    decode_body,
    parse_body,
)
from ..store.base import BatchMeta
from .auth import Authenticator, AuthError, require_ingest
from .client import NOT_AUDIT_HEADER
from .errors import error_response
from .metrics import IngestMetrics
from .spool_writer import SpoolWriter
from .writer import Admission, BatchWriter, PreparedBatch

log = logging.getLogger("kubetrail.ingest")


@dataclass
class IngestState:
    """What the ingest endpoint needs; one per application."""

    auth: Authenticator
    writer: BatchWriter | SpoolWriter
    admission: Admission
    metrics: IngestMetrics
    limits: LimitsConfig
    limiter: anyio.CapacityLimiter
    redact: bool = True


@dataclass
class _Prepared:
    batch: PreparedBatch
    records: int
    lines: bool


async def ingest_events(request: Request) -> Response:
    """Receive one batch of events; see the module docstring for the answers."""
    state: IngestState = request.app.state.ingest
    cluster = "-"
    try:
        principal = state.auth.authenticate(request.scope)
        cluster = require_ingest(principal, request.path_params.get("cluster"))
        check_content_type(request.headers.get("content-type"))
        _check_length(request, state.limits.max_body_bytes)
    except AuthError as exc:
        return _refuse(state, cluster, exc.status, exc.message, _auth_headers(exc.status))
    except BodyError as exc:
        return _refuse(state, cluster, exc.status, exc.message)
    admission = state.admission
    if admission.draining or not state.writer.alive:
        return _refuse(state, cluster, 503, "the server is shutting down", _retry(state))
    if not admission.try_admit():
        message = f"the write queue is full ({admission.capacity} batches); retry later"
        return _refuse(state, cluster, 429, message, _retry(state))
    state.metrics.queue_depth.set(admission.pending)
    started = time.perf_counter()
    try:
        return await _ingest(request, state, cluster, started)
    finally:
        admission.release()
        state.metrics.queue_depth.set(admission.pending)


async def _ingest(request: Request, state: IngestState, cluster: str, started: float) -> Response:
    try:
        not_audit = _not_audit(request)
        body = await _read_body(request, state.limits.max_body_bytes)
    except BodyError as exc:
        return _refuse(state, cluster, exc.status, exc.message)
    except ClientDisconnect:
        return _refuse(state, cluster, 400, "the client disconnected before the body ended")
    state.metrics.bytes.labels(cluster).inc(len(body))
    encoding = request.headers.get("content-encoding")
    try:
        prepared = await anyio.to_thread.run_sync(
            _prepare, body, encoding, cluster, state, limiter=state.limiter
        )
    except BodyError as exc:
        return _refuse(state, cluster, exc.status, exc.message)
    try:
        result = await asyncio.wrap_future(state.writer.submit(prepared.batch))
    except Exception as exc:  # the store failed: nothing acknowledged, the sender retries
        return _refuse(state, cluster, 503, f"cannot store the batch: {exc}", _retry(state))
    _count(state, cluster, prepared, result.stored, result.duplicates)
    state.metrics.not_audit.labels(cluster).inc(not_audit)
    state.metrics.commit_seconds.labels(cluster).observe(getattr(result, "seconds", 0.0))
    state.metrics.request_seconds.labels(cluster).observe(time.perf_counter() - started)
    rejected = [_rejection_json(r, prepared.lines) for r in prepared.batch.rejections]
    return JSONResponse(
        {"accepted": result.stored, "duplicates": result.duplicates, "rejected": rejected}
    )


def _prepare(body: bytes, encoding: str | None, cluster: str, state: IngestState) -> _Prepared:
    data = decode_body(body, encoding, state.limits.max_decompressed_bytes)
    parsed = parse_body(data)
    meta = BatchMeta(cluster=cluster, source=SOURCE, batch_id=uuid.uuid4().hex)
    try:
        normalized = normalize_records(
            parsed.records,
            cluster=cluster,
            source=SOURCE,
            batch_id=meta.batch_id,
            redact=state.redact,
        )
    except RecursionError:  # one record nested deeper than the decoder goes
        raise BodyError(400, TOO_DEEP) from None
    batch = PreparedBatch(normalized.table, meta, normalized.rejections)
    return _Prepared(batch, normalized.records, parsed.lines)


def _not_audit(request: Request) -> int:
    """The ``X-Kubetrail-Not-Audit`` count a collector sends with a batch (0 if absent)."""
    value = request.headers.get(NOT_AUDIT_HEADER)
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 12:
        raise BodyError(400, f"{NOT_AUDIT_HEADER}: expected a count of lines, got {value[:40]!r}")
    return int(value)


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"the body is {declared} bytes; the limit is {limit}")


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _rejection_json(rejection: Rejection, lines: bool) -> dict[str, object]:
    if lines and rejection.line is not None:
        out: dict[str, object] = {"index": rejection.line - 1, "reason": rejection.reason}
        if rejection.index is not None:
            out["item"] = rejection.index
        return out
    return {"index": rejection.index or 0, "reason": rejection.reason}


def _count(state: IngestState, cluster: str, prepared: _Prepared, stored: int, dups: int) -> None:
    m = state.metrics
    m.received.labels(cluster).inc(prepared.records)
    m.stored.labels(cluster).inc(stored)
    m.duplicates.labels(cluster).inc(dups)
    for reason, n in Counter(r.reason for r in prepared.batch.rejections).items():
        m.rejected.labels(cluster, reason).inc(n)
    m.batches.labels(cluster, "200").inc()


def _refuse(
    state: IngestState,
    cluster: str,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    state.metrics.batches.labels(cluster, str(status)).inc()
    if status >= 500:
        log.warning("ingest refused (%s): %s", status, message)
    return error_response(status, message, headers=headers)


def _retry(state: IngestState) -> dict[str, str]:
    return {"Retry-After": str(state.limits.retry_after_seconds)}


def _auth_headers(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="kubetrail"'} if status == 401 else {}
