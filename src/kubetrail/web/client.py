"""A client of ``POST /ingest/v1/events``, used by ``kubetrail collect --server``.

Batches are sent as gzipped JSON lines. A batch is retried until the server acknowledges it:
connection errors, timeouts, 408, 429 and 5xx wait with exponential backoff and full jitter
(bounded by ``max_backoff``; ``Retry-After`` is honoured), and the reader does not move on
meanwhile, so memory holds one batch. Answers that retrying cannot fix (401, 403, 413, 415)
raise :class:`~kubetrail.errors.SourceError`; a 400 (nothing in the batch is JSON) is logged
and the batch skipped, as the server would quarantine its lines one by one.
"""

from __future__ import annotations

import gzip
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import SourceError

log = logging.getLogger("kubetrail.client")

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
INGEST_PATH = "/ingest/v1/events"
#: Header with the count of container-log lines a collector skipped as not audit events.
NOT_AUDIT_HEADER = "X-Kubetrail-Not-Audit"


@dataclass
class SendResult:
    """The server's answer to one batch."""

    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1


class IngestClient:
    """Sends batches of JSON lines to a kubetrail server.

    Args:
        server: base URL (``https://kubetrail.example:8443``) or the full ingest URL.
        token: bearer token of the cluster, or ``None`` with a client certificate.
        cert: client certificate PEM; ``key`` its key.
        ca: CA bundle to verify the server (default: the system's).
        timeout: seconds per attempt (default 30, like the API server's webhook).
        max_backoff: longest wait between attempts (default 30 s).
        stop: polled between attempts; when true, :meth:`send` gives up with ``SourceError``.
        sleep: the wait function (tests pass a fake).
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        ca: str | None = None,
        timeout: float = 30.0,
        max_backoff: float = 30.0,
        stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        url = server.rstrip("/")
        self.url = url if url.endswith("/events") else url + INGEST_PATH
        verify: ssl.SSLContext | bool = True
        if ca or cert:
            verify = ssl.create_default_context(cafile=ca)
            if cert:
                verify.load_cert_chain(cert, key)
        headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(verify=verify, timeout=timeout, headers=headers)
        self.max_backoff = max_backoff
        self._stop = stop
        self._sleep = sleep

    def send(self, lines: list[bytes], not_audit: int = 0) -> SendResult:
        """Send one batch and return once the server committed it (retrying as needed).

        ``not_audit`` (container-log lines the collector left out as not audit events) goes
        in the ``X-Kubetrail-Not-Audit`` header, so that the server's /metrics counts them.

        Raises:
            SourceError: the server refuses the credential or the request for good, or
                ``stop`` became true while retrying.
        """
        body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1)
        headers = {NOT_AUDIT_HEADER: str(not_audit)} if not_audit else None
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("cannot reach %s (attempt %d): %s", self.url, attempt, exc)
            else:
                if response.status_code == 200:
                    data = response.json()
                    return SendResult(
                        data["accepted"], data["duplicates"], data["rejected"], attempt
                    )
                if response.status_code == 400:
                    log.error("the server refused a batch as unreadable: %s", _error(response))
                    return SendResult(0, 0, [{"reason": _error(response)}], attempt)
                if response.status_code not in RETRYABLE:
                    raise SourceError(f"{self.url}: {response.status_code}: {_error(response)}")
                wait = _retry_after(response)
                log.warning("%s answered %d; retrying", self.url, response.status_code)
            if self._stop():
                raise SourceError(f"{self.url}: stopped while retrying a batch")
            self._sleep(wait if wait is not None else backoff(attempt, self.max_backoff))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def backoff(attempt: int, cap: float, base: float = 0.5) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base · 2^(attempt-1))]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt - 1, 30)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]
