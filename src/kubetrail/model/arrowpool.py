"""Which allocator Arrow buffers come from in long imports and in the server.

pyarrow's default pool (mimalloc) keeps freed pages for reuse. An import frees and allocates a
batch's columns (tens of MB) every few seconds, and with mimalloc the process's resident size
settles about 40 MB higher than with the C library's allocator, at the same speed
(docs/benchmarks.md, "Ingest memory"). Commands that stream batches switch the process to
the system pool once, before the first batch.
"""

from __future__ import annotations

import pyarrow as pa


def use_system_pool() -> None:
    """Make the C library's allocator Arrow's default pool for this process."""
    pa.set_memory_pool(pa.system_memory_pool())
