"""The journal: small writes during a large upload, during a multipart upload of large parts
and during a large CompleteMultipartUpload (one lock for every write, taken late by all
three), and restart time after heavy churn, with
compaction against without.

The workload of issue 7: 40,000 small puts then 20,000 deletes (20,000 live objects after
20,000 deletes), against a `local-aws serve` process of its own (a restart must not touch
the shared server). Then the same data dir is restarted twice: without compaction (the
journal replays the whole history, as before compaction existed: the baseline) and after
compaction (a snapshot of the 20,000 live objects). Restart time is the wall time from
starting the process to its "serving on" line, and both include the interpreter's start.
Then, on the compacted server: how long a write waits while a compaction snapshots the
20,000 live objects, and a restart from the longest tail a compaction leaves (just under
COMPACT_EVERY records after the snapshot): restart time whatever the history.
``BENCH_JOURNAL_OBJECTS`` scales the workload down for a quick look.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.harness import Row
from local_aws.journal import COMPACT_EVERY

LIVE = int(os.environ.get("BENCH_JOURNAL_OBJECTS", "20000"))
TARGET_SECONDS = 5.0
#: The slowest write while a compaction snapshotted 20,000 objects, before the capture used a
#: dispatch table and paused the GC (idle machine); issue 7 asks for <= 100 ms.
PAUSE_BEFORE_MS = 427.0
PAUSE_TARGET_MS = 100.0
LARGE_MB = int(os.environ.get("BENCH_JOURNAL_LARGE_MB", "1024"))
PART_MB = 64
#: A multipart upload of LARGE_MB in this many parts, sent at once (as boto3 sends them).
LARGE_PARTS = 4


def _small_put_latencies(aws: Any, bucket: str, until: Any, at_least: int = 50) -> list[float]:
    s3 = aws.client("s3")
    latencies: list[float] = []
    i = 0
    while not until() or len(latencies) < at_least:
        started = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=f"small/{i % 100}", Body=b"x")
        latencies.append(time.perf_counter() - started)
        i += 1
    return latencies


def _p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def _small_put_rows(
    during: str, latencies: list[float], baseline: list[float], baseline_name: str
) -> list[Row]:
    """The p99 of 1-byte puts sent ``during`` a large write (target 100 ms) and the slowest
    of them, each against the same measure of ``baseline``'s puts."""
    p99 = _p99_ms(latencies)
    return [
        Row(
            f"1-byte PutObject p99 during {during} ({len(latencies)} puts)",
            p99,
            "ms",
            baseline=_p99_ms(baseline),
            baseline_name=f"{baseline_name} ({len(baseline)} puts)",
            target="<= 100 ms",
            ok=p99 <= 100,
        ),
        Row(
            "  the slowest of them",
            max(latencies) * 1000,
            "ms",
            baseline=max(baseline) * 1000,
            baseline_name=baseline_name,
        ),
    ]


def _small_writes_during_large_upload(aws: Any) -> list[Row]:
    """p99 of 1-byte puts while one large object goes up, against the same with nothing
    else going on."""
    s3 = aws.client("s3")
    bucket = f"bench-lock-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    quiet_latencies = _small_put_latencies(aws, bucket, until=lambda: True, at_least=200)
    with tempfile.TemporaryFile() as body:
        chunk = os.urandom(1 << 20)
        for _ in range(LARGE_MB):
            body.write(chunk)
        done = threading.Event()
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                body.seek(0)
                aws.client("s3").put_object(Bucket=bucket, Key="large", Body=body)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        uploader = threading.Thread(target=upload)
        started = time.perf_counter()
        uploader.start()
        latencies = _small_put_latencies(aws, bucket, until=done.is_set)
        uploader.join()
        upload_seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    s3.delete_object(Bucket=bucket, Key="large")
    return [
        *_small_put_rows(
            f"a {LARGE_MB:,} MB PutObject", latencies, quiet_latencies, "with no upload"
        ),
        Row(f"  the {LARGE_MB:,} MB PutObject itself", upload_seconds, "s"),
    ]


def _send_parts(aws: Any, bucket: str, part: bytes) -> float:
    """Seconds to send LARGE_PARTS parts of ``part`` at once, each from its own client."""
    s3 = aws.client("s3")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]

    def send(number: int) -> None:
        aws.client("s3").upload_part(
            Bucket=bucket, Key="parts", UploadId=upload, PartNumber=number, Body=part
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(LARGE_PARTS) as pool:
        list(pool.map(send, range(1, LARGE_PARTS + 1)))
    seconds = time.perf_counter() - started
    s3.abort_multipart_upload(Bucket=bucket, Key="parts", UploadId=upload)
    return seconds


def _during_parts(aws: Any, bucket: str, part: bytes) -> tuple[list[float], float]:
    """1-byte put latencies while the parts go up, and the parts' seconds."""
    done = threading.Event()
    result: list[float] = []
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            result.append(_send_parts(aws, bucket, part))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    uploader = threading.Thread(target=upload)
    uploader.start()
    latencies = _small_put_latencies(aws, bucket, until=done.is_set)
    uploader.join()
    if errors:
        raise errors[0]
    return latencies, result[0]


def _small_writes_during_large_parts(aws: Any) -> list[Row]:
    """p99 of 1-byte puts while LARGE_PARTS large parts of one upload go up at once; the
    baseline is the same in this run with UploadPart holding the lock for its whole copy
    (as before it took the lock late)."""
    from local_aws.journal import write_path

    s3 = aws.client("s3")
    bucket = f"bench-parts-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    part_mb = LARGE_MB // LARGE_PARTS
    part = os.urandom(part_mb << 20)
    latencies, seconds = _during_parts(aws, bucket, part)
    late = write_path._part_upload
    write_path._part_upload = lambda *args: False  # type: ignore[assignment]
    try:
        before, before_seconds = _during_parts(aws, bucket, part)
    finally:
        write_path._part_upload = late
    return [
        *_small_put_rows(
            f"{LARGE_PARTS} × {part_mb:,} MB UploadPart at once",
            latencies,
            before,
            "each part's copy under the lock",
        ),
        Row(
            f"  the {LARGE_PARTS} parts themselves",
            seconds,
            "s",
            baseline=before_seconds,
            baseline_name="each part's copy under the lock",
        ),
    ]


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
    return (
        _small_writes_during_large_upload(aws)
        + _small_writes_during_large_parts(aws)
        + _small_writes_during_a_completion(aws)
        + _restart_after_churn()
    )


def _small_writes_during_a_completion(aws: Any) -> list[Row]:
    """1-byte puts while a large CompleteMultipartUpload joins its parts (they waited for
    the whole join when it held the journal's lock: the completion's time is the baseline)."""
    s3 = aws.client("s3")
    bucket = f"bench-join-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="joined")["UploadId"]
    part = os.urandom(PART_MB << 20)
    parts = [
        {
            "PartNumber": number,
            "ETag": s3.upload_part(
                Bucket=bucket, Key="joined", UploadId=upload, PartNumber=number, Body=part
            )["ETag"],
        }
        for number in range(1, LARGE_MB // PART_MB + 1)
    ]
    del part
    done = threading.Event()
    errors: list[BaseException] = []

    def complete() -> None:
        try:
            aws.client("s3").complete_multipart_upload(
                Bucket=bucket, Key="joined", UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    completer = threading.Thread(target=complete)
    started = time.perf_counter()
    completer.start()
    latencies = _small_put_latencies(aws, bucket, until=done.is_set, at_least=1)
    completer.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    s3.delete_object(Bucket=bucket, Key="joined")
    return [
        Row(
            f"slowest 1-byte PutObject during a {LARGE_MB:,} MB CompleteMultipartUpload "
            f"({len(latencies)} puts)",
            max(latencies) * 1000,
            "ms",
            baseline=seconds * 1000,
            baseline_name="the completion (what a write waited with the join under the lock)",
            target="<= 100 ms",
            ok=max(latencies) <= 0.1,
        ),
        Row("  1-byte PutObject p99 meanwhile", _p99_ms(latencies), "ms"),
    ]


def _restart_after_churn() -> list[Row]:
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
        try:
            paused, typical = _writes_across_a_compaction(server, journal)
            tail = _write_a_tail(server)
        finally:
            server.stop(signal.SIGKILL)
        tail_restart, server = _restart(compacted)
        tail_restore = _restored_seconds(server)
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
        Row(
            f"the slowest write while a compaction snapshots {LIVE:,} live objects",
            paused * 1000,
            "ms",
            baseline=typical * 1000,
            baseline_name="the median write",
        ),
        Row(
            "  against the same row before the capture's dispatch table and GC pause",
            paused * 1000,
            "ms",
            baseline=PAUSE_BEFORE_MS,
            baseline_name=f"{PAUSE_BEFORE_MS:g} ms on an idle machine (not this run)",
            target=f"<= {PAUSE_TARGET_MS:g} ms",
            ok=paused * 1000 <= PAUSE_TARGET_MS,
        ),
        Row(
            f"restart with ~{tail:,} records after the snapshot (compaction comes at "
            f"{COMPACT_EVERY:,})",
            tail_restart,
            "s",
            target=f"<= {TARGET_SECONDS:g} s",
            ok=tail_restart <= TARGET_SECONDS,
        ),
        Row("  of which: loading the state", tail_restore, "s"),
    ]


def _writes_across_a_compaction(server: Any, journal: Path) -> tuple[float, float]:
    """(slowest, median) of COMPACT_EVERY + 50 overwrites of live objects, one of which
    starts a compaction; return once it is done."""
    before = set(journal.glob("snapshot-*"))
    s3 = server.client("s3")
    latencies = []
    for i in range(COMPACT_EVERY + 50):
        started = time.perf_counter()
        # an even key is live (the odd ones were deleted): the live count stays LIVE
        s3.put_object(Bucket="churn", Key=f"k/{2 * (i % LIVE):06d}", Body=b"again")
        latencies.append(time.perf_counter() - started)
    deadline = time.monotonic() + 3600
    while set(journal.glob("snapshot-*")) in (before, set()) or list(journal.glob("*.new")):
        if time.monotonic() > deadline:
            raise TimeoutError("the journal was not compacted")
        time.sleep(0.2)
    return max(latencies), sorted(latencies)[len(latencies) // 2]


def _write_a_tail(server: Any) -> int:
    """Overwrite live objects until close to the next compaction: the longest tail of
    records a restart replays on top of the snapshot. Return about how many there are."""
    s3 = server.client("s3")
    more = COMPACT_EVERY - 100  # the ~50 that came in during the compaction, and a margin
    for i in range(more):
        s3.put_object(Bucket="churn", Key=f"k/{2 * (i % LIVE):06d}", Body=b"tail")
    return more + 50
