"""kubetrail: Kubernetes API-server audit logs, collected, searched, alerted on and kept.

Packages: ``model`` (the Event, decoding, normalisation), ``sources`` (files, stdin),
``pipeline`` (ingest), ``store`` (the embedded DuckDB engine behind the ``Store`` protocol),
``cli`` (the ``kubetrail`` command).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
