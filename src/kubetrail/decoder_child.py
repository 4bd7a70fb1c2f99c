"""The entry point of the decoding child process (see :mod:`kubetrail.decoder_process`).

The child refuses to import pandas. pyarrow imports pandas, when it is installed, on the first
``pa.array`` of a Python list, only to ask whether the list is a pandas object; the child
never holds one, and the import cost it 34 MB of its 105 MB (measured: 71 MB without). The
refusal is installed before anything else is imported, and only in this process.
"""

from __future__ import annotations

import importlib.abc
import json
import signal
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoPandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail, as if it were not installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not used by the decoding process", name=fullname)
        return None


def main(argv: Sequence[str]) -> None:
    """Decode the job given as JSON in ``argv[1]`` (written by the parent)."""
    sys.meta_path.insert(0, _NoPandas())
    # Ctrl-C reaches the whole process group: the parent handles it and stops the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from kubetrail.decoder_process import run_child
    from kubetrail.model.arrowpool import use_system_pool

    use_system_pool()  # as the parent does: freed chunk buffers go back at once
    run_child(json.loads(argv[1]))


if __name__ == "__main__":
    main(sys.argv)
