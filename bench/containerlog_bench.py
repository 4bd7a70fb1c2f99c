"""Decode rate of audit events wrapped by a container runtime, against plain JSON lines.

The same demo events are written three ways: plain JSON lines (the baseline, what
``--audit-log-path=FILE`` writes), CRI (containerd, CRI-O) and Docker json-file, the last two
with one API-server log line on stderr for every ``--noise`` events. Each file is read with
``iter_records(path, "auto")`` and decoded with ``decode_records`` (what ``kubetrail ingest``
does before normalising), in chunks of 4,096 records, in this process. ``--split`` cuts every
line into runtime records of that many bytes (16384 is the runtimes' default; demo events are
about 1.2 KB, so a small value measures joining). The methods run interleaved, ``--runs``
times; the table gives medians.

Usage::

    python bench/containerlog_bench.py --events 200000 --runs 5
    python bench/containerlog_bench.py --events 200000 --runs 5 --split 400
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from containerlogs import Wrapper, interleaved  # noqa: E402
from kubetrail.demo import generate_events  # noqa: E402
from kubetrail.model.decode import decode_records  # noqa: E402
from kubetrail.model.gcpause import gc_paused  # noqa: E402
from kubetrail.sources.containerlog import UnwrapStats  # noqa: E402
from kubetrail.sources.files import iter_records  # noqa: E402


def write_files(directory: Path, events: int, split: int, noise: int) -> dict[str, Path]:
    lines = list(generate_events(events, seed=3))
    files = {"jsonl": directory / "audit.jsonl"}
    files["jsonl"].write_bytes(b"\n".join(lines) + b"\n")
    for fmt in ("cri", "docker"):
        records, _ = interleaved(Wrapper(fmt, split), lines, every=noise)
        files[fmt] = directory / f"{fmt}.log"
        files[fmt].write_bytes(b"\n".join(records) + b"\n")
    return files


def decode_file(path: Path) -> tuple[float, int, int]:
    """Seconds to unwrap and decode a file; the events decoded; the lines left out."""
    stats = UnwrapStats()
    events = 0
    started = time.perf_counter()
    records = iter_records(path, "auto", stats)
    with gc_paused():
        while chunk := list(islice(records, 4096)):
            events += len(decode_records(chunk, str(path)).heads)
    return time.perf_counter() - started, events, stats.not_audit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--split", type=int, default=16 * 1024, help="runtime record size")
    parser.add_argument("--noise", type=int, default=10, help="events per API-server log line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.events, args.split, args.noise)
        seconds: dict[str, list[float]] = {fmt: [] for fmt in files}
        for _ in range(args.runs):
            for fmt, path in files.items():
                took, events, skipped = decode_file(path)
                assert events == args.events, (fmt, events)
                assert (skipped > 0) == (fmt != "jsonl"), (fmt, skipped)
                seconds[fmt].append(took)
        sizes = {fmt: path.stat().st_size for fmt, path in files.items()}
    base = args.events / statistics.median(seconds["jsonl"])
    print(
        f"{args.events:,} demo events, record size {args.split}, one log line per "
        f"{args.noise} events, median of {args.runs} runs"
    )
    print("| input | MB | events/s | vs plain JSON lines |")
    print("|---|---:|---:|---:|")
    for fmt in files:
        rate = args.events / statistics.median(seconds[fmt])
        print(f"| {fmt} | {sizes[fmt] / 1e6:,.0f} | {rate:,.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
