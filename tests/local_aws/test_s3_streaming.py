"""PutObject and GetObject stream: the server does not hold an object's body in memory.

Driven against a real `local-aws serve` process, whose memory is read from /proc: its
peak RSS (VmHWM, reset just before the download) may grow by far less than the object.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.memkit import MB, block, reset_peak, status_bytes

SIZE = 200 * MB
#: Peak RSS growth allowed while the object is downloaded: a materialised body alone
#: would be SIZE (moto's copy of it, then its slice for a range: 2×).
GROWTH_LIMIT = 60 * MB


def _expected(start: int, stop: int) -> bytes:
    out = bytearray()
    for i in range(start // MB, (stop - 1) // MB + 1):
        out += block(i)
    first = (start // MB) * MB
    return bytes(out[start - first : stop - first])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read the server's memory")
    data_dir = tmp_path_factory.mktemp("stream")
    source = data_dir.parent / "stream-source.bin"
    with open(source, "wb") as f:
        for i in range(SIZE // MB):
            f.write(block(i))
    proc = ServerProcess(data_dir / "aws").start()
    try:
        assert proc.proc is not None
        s3 = proc.client("s3")
        s3.create_bucket(Bucket="big")
        before = status_bytes(proc.proc.pid, "VmRSS")
        reset_peak(proc.proc.pid)
        with open(source, "rb") as f:
            s3.put_object(Bucket="big", Key="object.bin", Body=f)
        proc.put_growth = status_bytes(proc.proc.pid, "VmHWM") - before  # type: ignore[attr-defined]
        source.unlink()
        yield proc
    finally:
        proc.stop()


def _download_peak_growth(server: ServerProcess, **kwargs: str) -> tuple[int, str, int]:
    """(peak RSS growth of the server during the GetObject, sha256 and size of what came)."""
    assert server.proc is not None
    pid = server.proc.pid
    s3 = server.client("s3")
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    response = s3.get_object(Bucket="big", Key="object.bin", **kwargs)
    digest, size = hashlib.sha256(), 0
    for chunk in response["Body"].iter_chunks(MB):
        digest.update(chunk)
        size += len(chunk)
    return status_bytes(pid, "VmHWM") - before, digest.hexdigest(), size


def test_a_large_get_object_is_streamed(server: ServerProcess) -> None:
    growth, digest, size = _download_peak_growth(server)
    assert size == SIZE
    whole = hashlib.sha256()
    for i in range(SIZE // MB):
        whole.update(block(i))
    assert digest == whole.hexdigest()
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB for a {SIZE // MB} MB GET"


def test_a_large_put_object_is_streamed(server: ServerProcess) -> None:
    growth = server.put_growth  # type: ignore[attr-defined]
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB for a {SIZE // MB} MB PUT"
    head = server.client("s3").head_object(Bucket="big", Key="object.bin")
    whole = hashlib.md5(usedforsecurity=False)
    for i in range(SIZE // MB):
        whole.update(block(i))
    assert head["ContentLength"] == SIZE
    assert head["ETag"] == f'"{whole.hexdigest()}"'


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        (f"bytes={MB - 3}-{MB + 2}", MB - 3, MB + 3),  # across a chunk boundary
        (f"bytes={50 * MB}-{150 * MB - 1}", 50 * MB, 150 * MB),
        (f"bytes={SIZE - 10}-", SIZE - 10, SIZE),  # open-ended
        ("bytes=-5", SIZE - 5, SIZE),  # suffix
        (f"bytes={SIZE - 2}-{SIZE + 100}", SIZE - 2, SIZE),  # end past the object
    ],
)
def test_ranges_stream_the_right_bytes(
    server: ServerProcess, range_header: str, start: int, stop: int
) -> None:
    s3 = server.client("s3")
    response = s3.get_object(Bucket="big", Key="object.bin", Range=range_header)
    assert response["ContentRange"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response["ContentLength"] == stop - start
    body = response["Body"].read()
    assert body == _expected(start, stop)


def test_a_large_range_is_streamed_too(server: ServerProcess) -> None:
    growth, digest, size = _download_peak_growth(server, Range=f"bytes={10 * MB}-{190 * MB - 1}")
    assert size == 180 * MB
    assert digest == hashlib.sha256(_expected(10 * MB, 190 * MB)).hexdigest()
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB for a 180 MB range"


def test_a_range_past_the_end_is_an_aws_error(server: ServerProcess) -> None:
    from botocore.exceptions import ClientError

    s3 = server.client("s3")
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="big", Key="object.bin", Range=f"bytes={SIZE}-")
    assert caught.value.response["Error"]["Code"] == "InvalidRange"


def test_a_small_object_and_an_overwritten_one_read_back_whole(server: ServerProcess) -> None:
    s3 = server.client("s3")
    s3.put_object(Bucket="big", Key="small", Body=b"hello, world")
    assert s3.get_object(Bucket="big", Key="small")["Body"].read() == b"hello, world"
    assert s3.get_object(Bucket="big", Key="small", Range="bytes=7-")["Body"].read() == b"world"
    # a large object replaced while a download of the old one is under way: the download
    # still gets every byte of the old version
    payload = os.urandom(8 * MB)
    s3.put_object(Bucket="big", Key="swap", Body=payload)
    response = s3.get_object(Bucket="big", Key="swap")
    first = response["Body"].read(MB)
    s3.put_object(Bucket="big", Key="swap", Body=b"new")
    assert first + response["Body"].read() == payload
    assert s3.get_object(Bucket="big", Key="swap")["Body"].read() == b"new"


def test_streamed_puts_and_parts_survive_a_kill_and_keep_their_checksums(tmp_path: Path) -> None:
    import signal

    server = ServerProcess(tmp_path / "aws").start()
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="parts")
        payload = os.urandom(9 * MB)  # above the size from which a body is copied as a file
        put = s3.put_object(Bucket="parts", Key="one", Body=payload, ChecksumAlgorithm="SHA256")
        upload = s3.create_multipart_upload(Bucket="parts", Key="multi")["UploadId"]
        parts = [
            {
                "PartNumber": n,
                "ETag": s3.upload_part(
                    Bucket="parts", Key="multi", UploadId=upload, PartNumber=n, Body=body
                )["ETag"],
            }
            for n, body in ((1, payload), (2, b"tail"))
        ]
        s3.complete_multipart_upload(
            Bucket="parts", Key="multi", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        assert parts[0]["ETag"] == f'"{hashlib.md5(payload, usedforsecurity=False).hexdigest()}"'
        server.stop(signal.SIGKILL)
        server.start()  # the journal replays both, through the same streamed path
        s3 = server.client("s3")
        got = s3.get_object(Bucket="parts", Key="one", ChecksumMode="ENABLED")
        assert got["Body"].read() == payload
        assert got["ETag"] == put["ETag"]
        assert got["ChecksumSHA256"] == put["ChecksumSHA256"]
        assert s3.get_object(Bucket="parts", Key="multi")["Body"].read() == payload + b"tail"
    finally:
        server.stop()
