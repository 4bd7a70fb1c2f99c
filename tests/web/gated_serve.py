"""``kubetrail serve``'s application on a store that never commits (run as a script).

Every batch it answers stays in the spool only, so the kill -9 test can crash it with
acknowledged batches that the store does not have yet. Usage: ``gated_serve.py DB PORT``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn
from live import base_config

from kubetrail.store.duckdb import DuckDBStore
from kubetrail.web.app import create_app
from kubetrail.web.server import uvicorn_config


class StuckStore(DuckDBStore):
    """A real store whose commits of spooled batches wait (an hour: the test kills it first)."""

    def write_group(self, items: Any) -> Any:
        threading.Event().wait(3600)
        return super().write_group(items)


def main() -> None:
    db, port = Path(sys.argv[1]), int(sys.argv[2])
    config = base_config(db)
    config.listen = f"127.0.0.1:{port}"
    app = create_app(config, store=StuckStore(db))
    uvicorn.Server(uvicorn_config(app, config, log_level="warning")).run()


if __name__ == "__main__":
    main()
