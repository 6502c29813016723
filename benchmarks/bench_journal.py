"""The journal: restart time after heavy churn, with compaction against without.

The workload of issue 7: 40,000 small puts then 20,000 deletes (20,000 live objects after
20,000 deletes), against a `local-aws serve` process of its own (a restart must not touch
the shared server). Then the same data dir is restarted twice: without compaction (the
journal replays the whole history, as before compaction existed: the baseline) and after
compaction (a snapshot of the 20,000 live objects). Restart time is the wall time from
starting the process to its "serving on" line, and both include the interpreter's start.
``BENCH_JOURNAL_OBJECTS`` scales the workload down for a quick look.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

LIVE = int(os.environ.get("BENCH_JOURNAL_OBJECTS", "20000"))
TARGET_SECONDS = 5.0


def _churn(server: Any, live: int, threads: int = 8) -> None:
    clients = [server.client("s3") for _ in range(threads)]
    clients[0].create_bucket(Bucket="churn")

    def work(worker: int) -> None:
        s3 = clients[worker]
        for i in range(worker, 2 * live, threads):
            s3.put_object(Bucket="churn", Key=f"k/{i:06d}", Body=f"object {i}".encode())
        for i in range(worker, 2 * live, threads):
            if i % 2:
                s3.delete_object(Bucket="churn", Key=f"k/{i:06d}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def _restart(data_dir: Path, *args: str) -> tuple[float, Any]:
    from tests.conftest import ServerProcess

    started = time.perf_counter()
    server = ServerProcess(data_dir, args=args).start(timeout=3600)
    return time.perf_counter() - started, server


def _restored_seconds(server: Any) -> float:
    """The replay (or snapshot load) alone, as the server logged it."""
    for line in server.output:
        match = re.search(r"restored \d+ .* in ([0-9.]+)s", line)
        if match:
            return float(match.group(1))
    raise AssertionError(f"the server logged no restore: {server.output}")


def _count(server: Any) -> int:
    s3 = server.client("s3")
    return sum(
        page.get("KeyCount", 0)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="churn")
    )


def run(aws: Any) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        history = Path(tmp) / "history"
        # the whole history in the journal: written with compaction off
        seconds, server = _restart(history, "--compact-every", "0")
        _churn(server, LIVE)
        server.stop(signal.SIGKILL)
        compacted = Path(tmp) / "compacted"
        shutil.copytree(history, compacted)

        baseline, server = _restart(history, "--compact-every", "0")
        replay_baseline = _restored_seconds(server)
        assert _count(server) == LIVE
        server.stop(signal.SIGKILL)

        # the first start replays the history once more and compacts it in the background
        _, server = _restart(compacted)
        journal = compacted / "moto"
        deadline = time.monotonic() + 3600
        while not list(journal.glob("snapshot-*")) or list(journal.glob("*.new")):
            if time.monotonic() > deadline:
                raise TimeoutError("the journal was not compacted")
            time.sleep(0.2)
        server.stop(signal.SIGKILL)  # the worst case: no clean stop
        log_bytes = (journal / "journal.log").stat().st_size
        restart, server = _restart(compacted)
        restore = _restored_seconds(server)
        assert _count(server) == LIVE
        server.stop()
    return [
        Row(
            f"restart after {2 * LIVE:,} puts + {LIVE:,} deletes ({LIVE:,} live), compacted",
            restart,
            "s",
            baseline=baseline,
            baseline_name="replaying the whole history",
            target=f"<= {TARGET_SECONDS:g} s",
            ok=restart <= TARGET_SECONDS,
        ),
        Row(
            "  of which: loading the state (snapshot + records after it)",
            restore,
            "s",
            baseline=replay_baseline,
            baseline_name="replaying every record",
        ),
        Row("journal.log after compaction", log_bytes / 1024, "KiB"),
    ]
