"""Server memory while a large object goes up and comes back (issue 7, item 10).

A `local-aws serve` process of its own (its memory must be its alone) takes one PutObject
of ``BENCH_S3_MB`` MB (default 2048), then answers a GetObject of the whole object and a
Range of half of it; then the same file goes up again the way boto3's ``upload_file``
sends large files (multipart, boto3's default part size and concurrency) and comes back.
Its peak RSS (VmHWM, from /proc; reset before each phase) is read after each phase. The
baseline is the same run against a server with moto unpatched (``local_aws.s3stream``'s
``install`` and ``wrap`` and ``local_aws.s3join.install`` made no-ops: moto reads a
PutObject's body into memory and copies it again into its key buffer before that spills to
its file, GetObject answers with the whole body as bytes, and CompleteMultipartUpload joins
the parts in memory), in the same `make bench`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

MB = 1 << 20
SIZE_MB = int(os.environ.get("BENCH_S3_MB", "2048"))
TARGET_MB = 500
#: A server with moto's S3 unpatched: GetObject answers with the whole body as bytes.
_UNSTREAMED = (
    "-c",
    "import sys, local_aws.s3stream as s, local_aws.s3join as j; s.install = lambda: None; "
    "s.wrap = lambda app: app; j.install = lambda: None; "
    "from local_aws.cli import main; sys.exit(main())",
)


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


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
            _reset_peak(pid)
            with open(source, "rb") as body:
                s3.put_object(Bucket="big", Key="big.bin", Body=body)
            put = _status_mb(pid, "VmHWM")
            before_get = _status_mb(pid, "VmRSS")  # what the PutObject left resident
            _reset_peak(pid)
            got = _read_all(s3.get_object(Bucket="big", Key="big.bin"))
            half = SIZE_MB * MB // 2
            ranged = _read_all(
                s3.get_object(Bucket="big", Key="big.bin", Range=f"bytes={half // 2}-{half - 1}")
            )
            get = _status_mb(pid, "VmHWM")
            assert got == SIZE_MB * MB and ranged == half - half // 2, (got, ranged)
            s3.delete_object(Bucket="big", Key="big.bin")
            _reset_peak(pid)
            s3.upload_file(str(source), "big", "multi.bin")  # boto3's TransferManager
            multipart = _status_mb(pid, "VmHWM")
            response = s3.get_object(Bucket="big", Key="multi.bin")
            got = _read_all(response)
            multipart_get = _status_mb(pid, "VmHWM")
            parts = -(-SIZE_MB * MB // TransferConfig().multipart_chunksize)
            assert got == SIZE_MB * MB and response["ETag"].endswith(f'-{parts}"'), response["ETag"]
        finally:
            server.stop()
    return {
        "rest": rest,
        "put": put,
        "get": get,
        "get_growth": get - before_get,
        "multipart": multipart,
        "multipart_get": multipart_get,
    }


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
    return [
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
        Row("  server at rest", streamed["rest"], "MB"),
    ]
