"""Turns requests into audit events, one per stage, kept in log (stage time) order.

Scenarios call :meth:`Emitter.request` with a request's receive time and latency; the emitter
renders every stage of it at once and pushes the lines on a heap keyed by ``stageTimestamp``.
The generator pops lines once no future request can come before them, so the output is sorted
as a log file is, while a watch's ``ResponseComplete`` still lands minutes after its
``RequestReceived``.
"""

from __future__ import annotations

import dataclasses
import random
from heapq import heappush
from itertools import count

from kubetrail.demo.cluster import APPS, Actor, App
from kubetrail.demo.render import S200, MicroTime, go_duration, uuid4_from

_KIND = '{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"'
_ANN_OPEN = ',"annotations":{'


class Emitter:
    """Renders the stages of requests and queues them in stage-time order.

    Args:
        rng: the run's only source of randomness.
        limit: the number of events to produce; requests that do not fit are refused.
        start_us: first instant of the log, microseconds since the epoch.
        end_us: last instant of the log; later stage times are clamped to it.
    """

    def __init__(self, rng: random.Random, limit: int, start_us: int, end_us: int) -> None:
        self.rng = rng
        self.random = rng.random
        self.getrandbits = rng.getrandbits
        self.limit = limit
        self.start = start_us
        self.end = end_us
        self.count = 0
        self.heap: list[tuple[int, int, str]] = []
        self._seq = count()
        self.ts = MicroTime()
        self._rv = 48_213_577 + rng.randrange(1_000_000)
        self.apps: list[App] = [dataclasses.replace(a, pods=list(a.pods)) for a in APPS]
        self.serial = 0

    def uid(self) -> str:
        """A fresh random UUID (object uids, audit IDs)."""
        return uuid4_from(self.getrandbits)

    def rv(self) -> str:
        """The next etcd revision, as a ``resourceVersion`` string."""
        self._rv += 1 + int(self.random() * 7)
        return str(self._rv)

    def revision(self) -> str:
        """The current etcd revision (what a list or watch starts from)."""
        return str(self._rv)

    def fast(self) -> int:
        """A latency for a cheap read or lease write, in microseconds (0.3–10 ms, skewed low)."""
        r = self.random
        return 300 + int(r() * r() * 9_000)

    def slow(self) -> int:
        """A latency for a write or list with a body, in microseconds (2–120 ms, skewed low)."""
        r = self.random
        return 2_000 + int(r() * r() * r() * 120_000)

    def fits(self, events: int) -> bool:
        """Whether ``events`` more events fit in the requested total."""
        return self.count + events <= self.limit

    def request(
        self,
        t0: int,
        lat: int,
        who: Actor,
        verb: str,
        uri: str,
        ref: str = "",
        *,
        level: str = "Metadata",
        code: str = S200,
        ann: str | None = None,
        ref_final: str | None = None,
        req_obj: str = "",
        resp_obj: str = "",
        long: bool = False,
        imp: str = "",
    ) -> bool:
        """Queue the events of one authenticated request.

        Args:
            t0: receive time (µs since the epoch).
            lat: latency until ``ResponseComplete`` (µs).
            who: the authenticated actor.
            verb: the kube verb or lower-case HTTP method.
            uri: ``requestURI`` as sent (``&`` is escaped here, as Go does).
            ref: the ``,"objectRef":…`` fragment, empty for non-resource requests.
            level: the audit level the demo policy gives the request.
            code: the ``,"responseStatus":…`` fragment.
            ann: the annotations fragment (default: the actor's usual allow).
            ref_final: objectRef of the later stages, once the body filled name/uid/resourceVersion.
            req_obj: rendered ``requestObject`` (Request and RequestResponse levels).
            resp_obj: rendered ``responseObject`` (RequestResponse level).
            long: a long-running request (watch, exec, log…), which also has ``ResponseStarted``.
            imp: the ``,"impersonatedUser":…`` fragment.

        Returns:
            False (and nothing queued) when the request's events do not fit in the total.
        """
        need = 3 if long else 2
        if self.count + need > self.limit:
            return False
        self.count += need
        end = self.end
        if t0 > end:
            t0 = end
        t1 = t0 + lat
        if t1 > end:
            t1 = end
        ts = self.ts
        ts0 = ts(t0)
        head = _KIND + level + '","auditID":"' + uuid4_from(self.getrandbits) + '","stage":"'
        if "&" in uri:
            uri = uri.replace("&", "\\u0026")
        base = '","requestURI":"' + uri + '","verb":"' + verb + '","user":' + who.user
        times = ',"requestReceivedTimestamp":"' + ts0 + '","stageTimestamp":"'
        heap = self.heap
        seq = self._seq
        heappush(
            heap,
            (t0, next(seq), head + "RequestReceived" + base + who.tail + ref + times + ts0 + '"}'),
        )
        if ann is None:
            ann = who.allow
        mid = base + imp + who.tail + (ref if ref_final is None else ref_final) + code
        if long:
            t_started = t0 + 400 + int(self.random() * 2_000)
            if t_started > t1:
                t_started = t1
            line = head + "ResponseStarted" + mid + times + ts(t_started) + '"' + ann + "}"
            heappush(heap, (t_started, next(seq), line))
        if t1 - t0 > 500_000 and ann:
            # The audit filter adds latency annotations to slow requests' final stage only;
            # "apiserver.latency…" sorts before "authorization…", so it goes first.
            ann = (
                _ANN_OPEN + f'"apiserver.latency.k8s.io/total":"{go_duration(t1 - t0)}",' + ann[16:]
            )
        if req_obj:
            mid += ',"requestObject":' + req_obj
        if resp_obj:
            mid += ',"responseObject":' + resp_obj
        heappush(
            heap,
            (t1, next(seq), head + "ResponseComplete" + mid + times + ts(t1) + '"' + ann + "}"),
        )
        return True

    def failed_auth(
        self, t0: int, ip: str, ua: str, verb: str, uri: str, ref: str, methods: str
    ) -> bool:
        """Queue the single ``ResponseStarted`` event of a request whose authentication failed."""
        if self.count + 1 > self.limit:
            return False
        self.count += 1
        t0 = min(t0, self.end)
        t1 = min(t0 + 100 + int(self.random() * 900), self.end)
        if "&" in uri:
            uri = uri.replace("&", "\\u0026")
        line = (
            f'{_KIND}Metadata","auditID":"{uuid4_from(self.getrandbits)}","stage":"ResponseStarted",'
            f'"requestURI":"{uri}","verb":"{verb}","user":{{}},"sourceIPs":["{ip}"],'
            f'"userAgent":"{ua}"{ref},"responseStatus":{{"metadata":{{}},'
            f'"message":"Authentication failed, attempted: {methods}","code":401}},'
            f'"requestReceivedTimestamp":"{self.ts(t0)}","stageTimestamp":"{self.ts(t1)}"}}'
        )
        heappush(self.heap, (t1, next(self._seq), line))
        return True
