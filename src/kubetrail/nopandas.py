"""The kubetrail program refuses to import pandas.

pyarrow imports pandas, when it is installed, the first time it meets a Python object it has to
inspect (``pa.array`` of a list, ``pa.scalar``) and with its dataset module (behind
``Table.group_by``), only to ask whether the object is a pandas one. kubetrail never holds one.
In an import, that cost 35 MB of the main process's peak (400 against 435 MB PSS per million
events, docs/benchmarks.md) and 34 MB of the decoding child's.

The refusal is a decision of the program, not of the library: the ``kubetrail`` command and
``python -m kubetrail`` install it before they run (:func:`kubetrail.cli.run`), and so does the
decoding child. Importing kubetrail as a library changes nothing in the caller's process.
pyarrow, told that pandas is missing, behaves as where it is not installed.
"""

from __future__ import annotations

import importlib.abc
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
            raise ModuleNotFoundError("kubetrail does not use pandas", name=fullname)
        return None


def refuse_pandas() -> None:
    """Make this process's imports of pandas fail from now on (once; pandas not yet loaded)."""
    if "pandas" in sys.modules or any(isinstance(f, _NoPandas) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _NoPandas())
