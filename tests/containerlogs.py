"""Container logs written the way containerd/CRI-O, Docker and the kubelet write them.

The API server runs with ``--audit-log-path=-``: audit events go to stdout, its klog lines,
warnings and stack traces to stderr. Long lines are split by the runtime (16 KiB by default;
tests pass a small ``split`` to exercise joining on ordinary events). The kubelet rotates
``/var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`` to ``<restart>.log.<YYYYMMDD-hhmmss>``
and gzips the older backups; ``/var/log/containers/<pod>_<ns>_<container>-<id>.log`` is a
symlink to the live file, and a restarted container gets a new id, so a new name.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: The API server's own output, as found in real kube-apiserver container logs (stderr).
NOT_AUDIT = [
    b"I1123 12:00:00.000000       1 controller.go:615] quota admission added evaluator for: "
    b"leases.coordination.k8s.io",
    b"W1123 12:00:01.123456       1 lease.go:250] Resetting endpoints for master service "
    b'"kubernetes" to [10.0.0.1]',
    b"E1123 12:00:02.000000       1 status.go:71] apiserver received an error that is not an "
    b"metav1.Status: context canceled",
    b"Flag --insecure-port has been deprecated, This flag has no effect now.",
    b"goroutine 1 [running]:",
    b"\t/workspace/src/k8s.io/apiserver/pkg/server/genericapiserver.go:600 +0x1b0",
    b'{"ts":1700740800000.1,"caller":"app/server.go:155","msg":"Version: v1.28.3","v":0}',
]

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Wrapper:
    """Turns messages into the records of one runtime's log format."""

    def __init__(self, fmt: str, split: int = 16 * 1024) -> None:
        self.fmt = fmt
        self.split = split
        self._n = 0

    def _time(self) -> datetime:
        self._n += 1
        return _EPOCH + timedelta(microseconds=self._n * 1013)

    def records(self, message: bytes, stream: str = "stdout") -> list[bytes]:
        """The records of one line written by the container (no trailing newline)."""
        parts = [message[i : i + self.split] for i in range(0, len(message), self.split)] or [b""]
        out = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            when = self._time()
            if self.fmt == "cri":
                stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f").encode() + b"123Z"
                tag = b"F" if last else b"P"
                out.append(b" ".join([stamp, stream.encode(), tag, part]))
            else:
                log = part.decode() + ("\n" if last else "")
                record = {"log": log, "stream": stream, "time": when.isoformat() + "Z"}
                out.append(json.dumps(record, separators=(",", ":")).encode())
        return out


def interleaved(wrapper: Wrapper, events: list[bytes], every: int = 3) -> tuple[list[bytes], int]:
    """Records of ``events`` on stdout with stderr lines in between, some inside split lines.

    Returns the records and the number of not-audit lines among them.
    """
    out: list[bytes] = []
    noise = 0
    for i, event in enumerate(events):
        records = wrapper.records(event)
        if i % every == 0 and len(records) > 1:
            # A stderr line between two parts of a stdout line: joining is per stream.
            out.append(records[0])
            out.extend(wrapper.records(NOT_AUDIT[i % len(NOT_AUDIT)], "stderr"))
            noise += 1
            out.extend(records[1:])
        else:
            out.extend(records)
        if i % every == 1:
            out.extend(wrapper.records(NOT_AUDIT[i % len(NOT_AUDIT)], "stderr"))
            noise += 1
    return out, noise


class PodLogs:
    """The kube-apiserver's container log on a control-plane node, under ``root``."""

    def __init__(self, root: Path, wrapper: Wrapper, events: list[bytes]) -> None:
        self.root = root
        self.wrapper = wrapper
        self.containers = root / "var/log/containers"
        self.containers.mkdir(parents=True)
        self.pod_dir = root / "var/log/pods/kube-system_kube-apiserver-cp1_0f1e2d3c"
        self.dir = self.pod_dir / "kube-apiserver"
        self.dir.mkdir(parents=True)
        self._events: Iterator[bytes] = iter(events)
        self.written: list[bytes] = []
        self.noise = 0
        self.restarts = 0
        self._rotations = 0
        self._link()

    @property
    def glob(self) -> str:
        return str(self.containers / "kube-apiserver-*.log")

    @property
    def live(self) -> Path:
        return self.dir / f"{self.restarts}.log"

    def _link(self) -> None:
        container_id = f"{self.restarts:02d}" + "ab" * 31
        link = self.containers / f"kube-apiserver-cp1_kube-system_kube-apiserver-{container_id}.log"
        os.symlink(self.live, link)
        self.live.touch()

    def write(self, n: int, noise: bool = True) -> None:
        """Append ``n`` audit events (and, with ``noise``, the API server's own lines)."""
        events = [next(self._events) for _ in range(n)]
        if noise:
            records, count = interleaved(self.wrapper, events)
            self.noise += count
        else:
            records = [r for e in events for r in self.wrapper.records(e)]
        self.append(records)
        self.written.extend(events)

    def append(self, records: list[bytes]) -> None:
        with open(self.live, "ab") as handle:
            handle.write(b"".join(r + b"\n" for r in records))

    def rotate(self) -> Path:
        """The kubelet's rotation: gzip older backups, rename the live file, reopen."""
        for older in sorted(self.dir.glob(f"{self.live.name}.*")):
            if not older.name.endswith(".gz"):
                with open(older, "rb") as src, gzip.open(str(older) + ".gz.tmp", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.rename(str(older) + ".gz.tmp", str(older) + ".gz")
                older.unlink()
        self._rotations += 1
        backup = self.live.with_name(f"{self.live.name}.20260101-0000{self._rotations:02d}")
        os.rename(self.live, backup)
        self.live.touch()
        return backup

    def restart(self) -> None:
        """The container restarts: a new log file and a new /var/log/containers name."""
        self.restarts += 1
        self._link()
