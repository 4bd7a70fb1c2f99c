"""Do reads on another DuckDB cursor proceed while the writer checkpoints?

The webhook's admission looks up stored keys while the spool's committer writes (and DuckDB
checkpoints at commit). This fills a table with audit-sized rows, then, five times, inserts
40,000 more rows and runs CHECKPOINT on the writer's connection while a second cursor runs a
point read every 2 ms; it prints each checkpoint's duration and the slowest read that started
during it.

    python bench/checkpoint_read_bench.py
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import duckdb


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        con = duckdb.connect(str(Path(work) / "t.duckdb"))
        con.execute("CREATE TABLE t (k VARCHAR, ts TIMESTAMP, raw VARCHAR)")
        fill = (
            "INSERT INTO t SELECT uuid()::VARCHAR, now()::TIMESTAMP, repeat('x', 800) FROM range(?)"
        )
        con.execute(fill, [200_000])
        con.execute("CHECKPOINT")
        reader = con.cursor()
        stop = threading.Event()
        reads: list[tuple[float, float]] = []  # (started, seconds)

        def read() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                reader.execute("SELECT count(*) FROM t WHERE k = 'absent'").fetchall()
                reads.append((started, time.perf_counter() - started))
                time.sleep(0.002)

        thread = threading.Thread(target=read)
        thread.start()
        checkpoints = []
        for _ in range(5):
            con.execute(fill, [40_000])
            started = time.perf_counter()
            con.execute("CHECKPOINT")
            checkpoints.append((started, time.perf_counter()))
            time.sleep(0.2)
        stop.set()
        thread.join()
        for lo, hi in checkpoints:
            during = [s for t, s in reads if lo <= t <= hi]
            print(
                f"checkpoint {1000 * (hi - lo):6.0f} ms: {len(during):4d} reads started during it, "
                f"slowest {1000 * max(during, default=0):5.1f} ms"
            )
        outside = [s for t, s in reads if not any(lo <= t <= hi for lo, hi in checkpoints)]
        print(f"other reads: median {1000 * statistics.median(outside):.1f} ms")


if __name__ == "__main__":
    main()
