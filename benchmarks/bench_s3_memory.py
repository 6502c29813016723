"""Server memory while a large object goes up and comes back, and while a job writes a
large log (issue 7, item 10).

A `local-aws serve` process of its own (its memory must be its alone) takes one PutObject
of ``BENCH_S3_MB`` MB (default 2048), then answers a GetObject of the whole object and a
Range of half of it; then the same file goes up again the way boto3's ``upload_file``
sends large files (multipart, boto3's default part size and concurrency), comes back and is
copied (CopyObject, as batch_inference's publish does), and copied again the way boto3's
managed ``copy`` copies a large object (UploadPartCopy of 64 MB ranges, one at a time: the
unpatched server reads the whole source for every part, so more at a time would add the
object again per part copy running, and smaller parts would take it minutes; it peaks
at 8.5 GB for 2 GB even so, on top of what its earlier phases left resident).
After the multipart upload, the disk the server holds open (moto's files, each counted
once) is read too: moto closes the parts' files when it joins them, so a completed object
is held once (issue 7's "parts are a second copy" does not hold for this moto).
Its peak RSS (VmHWM, from /proc; reset before each phase) is read after each phase. The
baseline is the same run against a server with moto unpatched (``local_aws.s3stream``'s
``install`` and ``wrap`` and ``local_aws.s3join.install`` made no-ops: moto reads a
PutObject's body into memory and copies it again into its key buffer before that spills to
its file, GetObject answers with the whole body as bytes, and CompleteMultipartUpload joins
the parts in memory, CopyObject passes the source's whole body as bytes, UploadPartCopy
reads the whole source and slices the part out of it), in the same
`make bench`.

The log rows: a training job prints ``BENCH_LOG_MB`` MB (default 1024) of 500-byte lines,
which local_aws sends to CloudWatch Logs as it would any job's; the server's peak RSS
during the job and what it keeps after it (both over its RSS after a one-line job, so
that what running any job costs is left out), against a server whose moto keeps the events
in its own lists (``local_aws.logpatch``'s ``install`` and ``free_request_bodies`` made
no-ops).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import Row
from tests.memkit import MB, reset_peak, status_bytes

SIZE_MB = int(os.environ.get("BENCH_S3_MB", "2048"))
TARGET_MB = 500
LOG_MB = int(os.environ.get("BENCH_LOG_MB", "1024"))
LOG_TARGET_MB = 200  # server RSS growth while the job writes its log
#: A server with moto's Logs unpatched: every event a LogEvent in a Python list.
_EVENTS_IN_LISTS = (
    "-c",
    "import sys, local_aws.logpatch as p; p.install = lambda d: None; "
    "p.collect_garbage = lambda: 0; p.free_request_bodies = lambda: None; "
    "from local_aws.cli import main; sys.exit(main())",
)
_LINE = 500
_NOISY_JOB = """
import sys
pad = "x" * ({line} - 11)
write = sys.stdout.write
for i in range({lines}):
    write(f"{{i:09d}} {{pad}}\\n")
"""
#: A server with moto's S3 unpatched: GetObject answers with the whole body as bytes.
_UNSTREAMED = (
    "-c",
    "import sys, contextlib, local_aws.s3stream as s, local_aws.s3join as j; "
    "s.install = lambda: None; s.wrap = lambda app: app; j.install = lambda: None; "
    "s.copying = lambda *a: contextlib.nullcontext(); "
    "from local_aws.cli import main; sys.exit(main())",
)


def _status_mb(pid: int, field: str) -> float:
    return status_bytes(pid, field) / MB


def _open_files_mb(pid: int) -> float:
    """Bytes of the regular files the process holds open (each file once), in MB."""
    seen, total = set(), 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            st = fd.stat()  # the file the descriptor is open on
        except OSError:  # closed meanwhile
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total / MB


def _read_all(response: dict[str, Any]) -> int:
    return sum(len(chunk) for chunk in response["Body"].iter_chunks(MB))


def _peaks(source: Path, launcher: tuple[str, ...] | None) -> dict[str, float]:
    """Peak RSS (MB) of a fresh server: at rest, during the PutObject, during the GETs."""
    from boto3.s3.transfer import TransferConfig

    from tests.conftest import ServerProcess

    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        kwargs = {"launcher": launcher} if launcher else {}
        server = ServerProcess(Path(tmp) / "aws", **kwargs).start(timeout=600)
        try:
            assert server.proc is not None
            pid = server.proc.pid
            s3 = server.client("s3")
            s3.create_bucket(Bucket="big")
            rest = _status_mb(pid, "VmRSS")
            reset_peak(pid)
            with open(source, "rb") as body:
                s3.put_object(Bucket="big", Key="big.bin", Body=body)
            put = _status_mb(pid, "VmHWM")
            before_get = _status_mb(pid, "VmRSS")  # what the PutObject left resident
            reset_peak(pid)
            got = _read_all(s3.get_object(Bucket="big", Key="big.bin"))
            half = SIZE_MB * MB // 2
            ranged = _read_all(
                s3.get_object(Bucket="big", Key="big.bin", Range=f"bytes={half // 2}-{half - 1}")
            )
            get = _status_mb(pid, "VmHWM")
            assert got == SIZE_MB * MB and ranged == half - half // 2, (got, ranged)
            s3.delete_object(Bucket="big", Key="big.bin")
            reset_peak(pid)
            s3.upload_file(str(source), "big", "multi.bin")  # boto3's TransferManager
            multipart = _status_mb(pid, "VmHWM")
            held = _open_files_mb(pid)  # the object, its journal records are files closed
            response = s3.get_object(Bucket="big", Key="multi.bin")
            got = _read_all(response)
            multipart_get = _status_mb(pid, "VmHWM")
            parts = -(-SIZE_MB * MB // TransferConfig().multipart_chunksize)
            assert got == SIZE_MB * MB and response["ETag"].endswith(f'-{parts}"'), response["ETag"]
            reset_peak(pid)  # batch_inference's publish: CopyObject of the multipart output
            s3.copy_object(Bucket="big", Key="copy.bin", CopySource="big/multi.bin")
            copy = _status_mb(pid, "VmHWM")
            reset_peak(pid)  # boto3's managed copy: UploadPartCopy of ranges
            ranges = TransferConfig(
                multipart_threshold=64 * MB, multipart_chunksize=64 * MB, max_concurrency=1
            )
            s3.copy({"Bucket": "big", "Key": "multi.bin"}, "big", "managed.bin", Config=ranges)
            part_copy = _status_mb(pid, "VmHWM")
            copied = s3.head_object(Bucket="big", Key="managed.bin")["ContentLength"]
            assert copied == SIZE_MB * MB, copied
        finally:
            server.stop()
    return {
        "rest": rest,
        "put": put,
        "get": get,
        "get_growth": get - before_get,
        "multipart": multipart,
        "multipart_get": multipart_get,
        "copy": copy,
        "part_copy": part_copy,
        "held": held,
    }


def _log_growth(launcher: tuple[str, ...] | None) -> dict[str, float]:
    """Server RSS growth (MB) while a job writes LOG_MB of log lines: peak, and kept after."""
    from tests.conftest import ServerProcess, wait_for
    from tests.jobkit import training_request, upload_source

    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        kwargs = {"launcher": launcher} if launcher else {}
        server = ServerProcess(Path(tmp) / "aws", **kwargs).start(timeout=600)
        try:
            assert server.proc is not None
            pid = server.proc.pid
            s3, sm = server.client("s3"), server.client("sagemaker")
            s3.create_bucket(Bucket="noisy")
            s3.put_object(Bucket="noisy", Key="data/x.csv", Body=b"1,2\n")
            # a first job of one line: what running any job costs the server is not the log's
            for name, lines in (("warm-up", 1), ("noisy", LOG_MB * MB // _LINE)):
                script = _NOISY_JOB.format(line=_LINE, lines=lines)
                source = upload_source(s3, "noisy", f"code/{name}.tar.gz", {"train.py": script})
                request = training_request(name, "noisy", source)
                request["StoppingCondition"] = {"MaxRuntimeInSeconds": 3600}
                rest = _status_mb(pid, "VmRSS")
                reset_peak(pid)
                sm.create_training_job(**request)
                job = wait_for(
                    lambda name=name: sm.describe_training_job(TrainingJobName=name),  # type: ignore[misc]
                    "TrainingJobStatus",
                    timeout=3600,
                    interval=1,
                )
                assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
            peak, kept = _status_mb(pid, "VmHWM"), _status_mb(pid, "VmRSS")
            stream = server.client("logs").describe_log_streams(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="noisy/"
            )["logStreams"][0]
            assert stream["storedBytes"] >= LOG_MB * MB * 0.99, stream
        finally:
            server.stop()
    return {"peak": peak - rest, "kept": kept - rest}


def _log_rows() -> list[Row]:
    on_disk = _log_growth(None)
    in_lists = _log_growth(_EVENTS_IN_LISTS)
    return [
        Row(
            f"job writing {LOG_MB:,} MB of log: server RSS growth (peak)",
            on_disk["peak"],
            "MB",
            baseline=in_lists["peak"],
            baseline_name="events in moto's lists",
            target=f"<= {LOG_TARGET_MB} MB",
            ok=on_disk["peak"] <= LOG_TARGET_MB,
        ),
        Row(
            "  kept after the job",
            on_disk["kept"],
            "MB",
            baseline=in_lists["kept"],
            baseline_name="events in moto's lists",
        ),
    ]


def run(aws: Any) -> list[Row]:
    del aws  # a server of its own: the shared one's memory has other work in it
    if not Path("/proc/self/clear_refs").exists():
        return [Row("S3 memory: needs Linux /proc (skipped)", 0, "MB")]
    with tempfile.TemporaryDirectory(prefix="bench-s3-source-") as tmp:
        source = Path(tmp) / "big.bin"
        with open(source, "wb") as out:
            block = os.urandom(MB)
            for _ in range(SIZE_MB):
                out.write(block)
        streamed = _peaks(source, None)
        baseline = _peaks(source, _UNSTREAMED)
    overall = max(streamed["put"], streamed["get"])
    rows = [
        Row(
            f"S3 {SIZE_MB:,} MB up and back: server peak RSS",
            overall,
            "MB",
            baseline=max(baseline["put"], baseline["get"]),
            baseline_name="moto unpatched",
            target=f"<= {TARGET_MB} MB",
            ok=overall <= TARGET_MB,
        ),
        Row(
            "  GetObject (whole, then a Range of a quarter): peak RSS",
            streamed["get"],
            "MB",
            baseline=baseline["get"],
            baseline_name="moto unpatched",
            target=f"<= {TARGET_MB} MB",
            ok=streamed["get"] <= TARGET_MB,
        ),
        Row(
            "  of which the GETs added",
            streamed["get_growth"],
            "MB",
            baseline=baseline["get_growth"],
            baseline_name="moto unpatched",
        ),
        Row(
            "  PutObject: peak RSS",
            streamed["put"],
            "MB",
            baseline=baseline["put"],
            baseline_name="moto unpatched",
        ),
        Row(
            f"S3 {SIZE_MB:,} MB multipart (upload_file) up and back: server peak RSS",
            streamed["multipart_get"],
            "MB",
            baseline=baseline["multipart_get"],
            baseline_name="moto unpatched",
            target=f"<= {TARGET_MB} MB",
            ok=streamed["multipart_get"] <= TARGET_MB,
        ),
        Row(
            "  upload_file (parts, then CompleteMultipartUpload): peak RSS",
            streamed["multipart"],
            "MB",
            baseline=baseline["multipart"],
            baseline_name="moto unpatched",
        ),
        Row(
            f"S3 CopyObject of the {SIZE_MB:,} MB multipart object: server peak RSS",
            streamed["copy"],
            "MB",
            baseline=baseline["copy"],
            baseline_name="moto unpatched",
            target=f"<= {TARGET_MB} MB",
            ok=streamed["copy"] <= TARGET_MB,
        ),
        Row(
            f"S3 managed copy (UploadPartCopy, 64 MB ranges) of {SIZE_MB:,} MB: server peak RSS",
            streamed["part_copy"],
            "MB",
            baseline=baseline["part_copy"],
            baseline_name="moto unpatched",
            target=f"<= {TARGET_MB} MB",
            ok=streamed["part_copy"] <= TARGET_MB,
        ),
        Row(
            "  after upload_file: disk the server holds open (object once: <= 1.1x)",
            streamed["held"],
            "MB",
            baseline=baseline["held"],
            baseline_name="moto unpatched",
            target=f"<= {SIZE_MB * 1.1:,.0f} MB",
            ok=streamed["held"] <= SIZE_MB * 1.1,
        ),
        Row("  server at rest", streamed["rest"], "MB"),
    ]
    return rows + _log_rows()
