"""First-start chores of ``kubetrail serve``: the admin credential and the demo data.

The admin token is created once, at the first start without one: its SHA-256 is written next
to the store (``<db>.auth.json``, versioned, written atomically) and the token itself is shown
once. Demo data is generated only into an empty store, so a restart does not add it twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from ..config import DetectConfig, ServerConfig
from ..errors import ConfigError
from ..pipeline import IngestSummary, ingest_batches
from ..quarantine import Quarantine, quarantine_path
from ..store.base import Store
from ..store.location import open_location, sidecar_base
from .auth import hash_token, new_token

AUTH_FILE_VERSION = 1
DEMO_CLUSTER = "demo"


def auth_file(db: str) -> Path | None:
    """Where the admin token hashes of a store live (``None`` for an in-memory store)."""
    return None if db == ":memory:" else Path(f"{sidecar_base(db)}.auth.json")


def ensure_admin_token(config: ServerConfig) -> str | None:
    """Load the stored admin token hashes into ``config``, creating a token at first start.

    Returns:
        The new token (to be shown once), or ``None`` when one existed already.

    Raises:
        ConfigError: the auth file exists but cannot be read.
    """
    path = auth_file(config.db)
    if path is not None and path.exists():
        try:
            data = json.loads(path.read_text())
            hashes = [str(h) for h in data["admin_token_sha256"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: cannot read the admin credential: {exc}") from exc
        config.admin_token_sha256.extend(h for h in hashes if h not in config.admin_token_sha256)
        return None
    if config.admin_token_sha256:
        return None
    token = new_token()
    config.admin_token_sha256.append(hash_token(token))
    if path is not None:
        body = {"version": AUTH_FILE_VERSION, "admin_token_sha256": config.admin_token_sha256}
        _write_atomic(path, json.dumps(body, indent=2) + "\n")
    return token


def load_demo(
    config: ServerConfig,
    seed: int = 7,
    store: Store | None = None,
    detect: DetectConfig | None = None,
    end: datetime | None = None,
) -> IngestSummary | None:
    """Generate demo events ending now (or at ``end``) into the store, if it holds none yet.

    With ``detect`` enabled, the rules run on the demo batches too (their alerts are stored,
    not sent), so the demo has alerts to show.

    Args:
        config: the server settings (``db`` names the store unless ``store`` is given).
        seed: the demo generator's seed.
        store: an open store to fill (left open); default: open ``config.db`` and close it.
        detect: the detections' settings.
        end: when the demo's last event happens (default: now; the demo's people work by day,
            so a short demo's content depends on the hour it ends).

    Returns:
        What was ingested, or ``None`` when the store already had events.
    """
    from ..demo import generate_events  # imported only for --demo: it is large

    target = store if store is not None else open_location(config.db)
    quarantine = Quarantine(quarantine_path(sidecar_base(config.db)))
    try:
        if target.count() > 0:
            return None
        lines = generate_events(config.demo_events, seed=seed, end=end or datetime.now(UTC))

        def batches():  # type: ignore[no-untyped-def]
            numbered = ((i, line) for i, line in enumerate(lines, start=1))
            while chunk := list(islice(numbered, 20_000)):
                yield "demo", chunk

        detector = _demo_detector(target, detect)
        try:
            summary = ingest_batches(
                target, batches(), DEMO_CLUSTER, quarantine=quarantine, detector=detector
            )
            if detector is not None:
                detector.run_scheduled()
        finally:
            if detector is not None:
                detector.close()
        return summary
    finally:
        quarantine.close()
        if store is None:
            target.close()


def _demo_detector(store: Any, detect: DetectConfig | None) -> Any:
    if detect is None or not detect.enabled:
        return None
    from ..detect.detector import Detector
    from ..detect.loader import load_ruleset
    from ..detect.service import supports

    if not supports(store):
        return None  # a store that cannot keep alerts

    ruleset = load_ruleset(
        detect.rule_dirs,
        builtin=detect.builtin,
        disabled=detect.disabled,
        variables=detect.variable_values(),
    )
    return Detector(store, ruleset.rules)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
