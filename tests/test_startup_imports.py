"""The ``kubetrail`` program neither imports nor accepts pandas, even where pandas is installed.

pyarrow imports pandas (when it is installed) on ``pa.array`` of a Python sequence, to ask
whether it is a pandas object, and with ``pyarrow.dataset``. kubetrail never uses pandas; at
import it cost every command about 0.25 s and 38 MB (``kubetrail --help``: 0.77 s and 151 MB
before, 0.54 s and 113 MB after). The test environment has pandas (through chdb), so this test
fails if a module-level ``pa.array`` of a list comes back. The program itself refuses pandas
(:mod:`kubetrail.nopandas`), and pyarrow must work without it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pandas") is None, reason="pandas is not installed here"
)

_LOADED = "import sys; print(json.dumps('pandas' in sys.modules))"


def _run(code: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", f"import json\n{code}\n{_LOADED}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return bool(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_command_does_not_import_pandas() -> None:
    assert _run("import kubetrail.cli") is False


def test_the_program_refuses_pandas_and_pyarrow_works_without_it() -> None:
    code = """
import atexit, sys
import pyarrow as pa
def report():
    try:
        import pandas  # noqa: F401
        refused = False
    except ModuleNotFoundError:
        refused = True
    table = pa.table({"k": pa.array(["a", "b", "a"]), "n": [1, 2, 3]})
    grouped = table.group_by("k").aggregate([("n", "sum")])
    print(json.dumps(refused and grouped.num_rows == 2 and pa.scalar("x").as_py() == "x"))
atexit.register(report)
sys.argv = ["kubetrail", "--version"]
from kubetrail.cli import run
run()
"""
    assert _run_program(code) is True


def _run_program(code: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", f"import json\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return bool(json.loads(out.stdout.strip().splitlines()[-1]))
