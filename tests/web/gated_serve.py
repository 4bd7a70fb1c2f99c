"""``kubetrail serve``'s application on a store that commits late (run as a script).

``gated_serve.py DB PORT stuck``: the store never commits, so every answered batch stays in the
spool only (the kill -9 test crashes it with acknowledged batches the store does not have).
``gated_serve.py DB PORT slow``: each commit waits 1 s, so a SIGTERM finds batches in the spool.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from live import base_config

from kubetrail.store.duckdb import DuckDBStore
from kubetrail.web.app import create_app
from kubetrail.web.server import run


class LateStore(DuckDBStore):
    """A real store whose commits of spooled batches wait ``delay`` seconds first."""

    delay = 3600.0

    def write_group(self, items: Any) -> Any:
        threading.Event().wait(self.delay)
        return super().write_group(items)


def main() -> None:
    db, port, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    config = base_config(db)
    config.listen = f"127.0.0.1:{port}"
    store = LateStore(db)
    store.delay = 3600.0 if mode == "stuck" else 1.0
    run(create_app(config, store=store), config, log_level="warning")


if __name__ == "__main__":
    main()
