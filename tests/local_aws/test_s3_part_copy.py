"""UploadPartCopy copies file to file: boto3's managed copy of a large object (which copies
it part by part, each part a CopySourceRange) does not hold the object in the server; nor
does a CopyObject that asks for a new checksum algorithm.

Driven against a real `local-aws serve` process, whose memory is read from /proc. moto read
the whole source object into memory for every part, then sliced the part out of it, and
read a copy whole to checksum it.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.memkit import MB, block, reset_peak, status_bytes

SIZE = 160 * MB
PART = 16 * MB
#: Peak RSS growth allowed during the copy: moto's own held the object once per part copy
#: running (boto3 runs two here), and the slice of it again.
GROWTH_LIMIT = 60 * MB


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _source_bytes(start: int, stop: int) -> bytes:
    out = b"".join(block(i, b"part-copy") for i in range(start // MB, (stop - 1) // MB + 1))
    first = (start // MB) * MB
    return out[start - first : stop - first]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read the server's memory")
    data_dir = tmp_path_factory.mktemp("part-copy")
    source = data_dir / "source.bin"
    with open(source, "wb") as f:
        for i in range(SIZE // MB):
            f.write(block(i, b"part-copy"))
    proc = ServerProcess(data_dir / "aws").start()
    try:
        s3 = proc.client("s3")
        s3.create_bucket(Bucket="copies")
        with open(source, "rb") as f:
            s3.put_object(Bucket="copies", Key="big.bin", Body=f)
        source.unlink()
        yield proc
    finally:
        proc.stop()


def test_a_managed_copy_of_a_large_object_goes_file_to_file(server: ServerProcess) -> None:
    from boto3.s3.transfer import TransferConfig

    s3 = server.client("s3")
    assert server.proc is not None
    pid = server.proc.pid
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2)
    s3.copy({"Bucket": "copies", "Key": "big.bin"}, "copies", "managed.bin", Config=config)
    growth = status_bytes(pid, "VmHWM") - before

    whole, md5s = hashlib.sha256(), b""
    for start in range(0, SIZE, PART):
        part = _source_bytes(start, start + PART)
        whole.update(part)
        md5s += hashlib.md5(part, usedforsecurity=False).digest()
    got, size = hashlib.sha256(), 0
    answer = s3.get_object(Bucket="copies", Key="managed.bin")
    for chunk in answer["Body"].iter_chunks(MB):
        got.update(chunk)
        size += len(chunk)
    assert (size, got.hexdigest()) == (SIZE, whole.hexdigest())
    assert answer["ETag"] == f'"{_md5(md5s)}-{SIZE // PART}"'
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB copying {SIZE // MB} MB"


def _copy_part(
    s3: Any, upload: str, number: int, key: str, copy_range: str | None, target: str = "assembled"
) -> str:
    extra = {"CopySourceRange": copy_range} if copy_range else {}
    answer = s3.upload_part_copy(
        Bucket="copies",
        Key=target,
        UploadId=upload,
        PartNumber=number,
        CopySource={"Bucket": "copies", "Key": key},
        **extra,
    )
    return str(answer["CopyPartResult"]["ETag"])


def test_part_copies_with_and_without_a_range_give_moto_s_bytes_and_etags(
    server: ServerProcess,
) -> None:
    s3 = server.client("s3")
    whole_nine = _source_bytes(0, 9 * MB)  # above the size from which a copy streams
    s3.put_object(Bucket="copies", Key="nine.bin", Body=whole_nine)
    s3.put_object(Bucket="copies", Key="small.bin", Body=_source_bytes(0, 5000))
    upload = s3.create_multipart_upload(Bucket="copies", Key="assembled")["UploadId"]
    cases = [
        ("nine.bin", None, whole_nine),  # the whole object, streamed
        # across 1 MiB chunk boundaries of the source's file, streamed
        ("big.bin", f"bytes={MB - 7}-{12 * MB + 4}", _source_bytes(MB - 7, 12 * MB + 5)),
        # an end past the object: moto copies up to the end
        ("big.bin", f"bytes={SIZE - 9 * MB}-{SIZE + 100}", _source_bytes(SIZE - 9 * MB, SIZE)),
        # a range of a small object: moto's own path, for comparison (last: S3's minimum
        # part size applies to every part but the last)
        ("small.bin", "bytes=100-4000", _source_bytes(100, 4001)),
    ]
    parts = []
    for number, (key, copy_range, expected) in enumerate(cases, 1):
        etag = _copy_part(s3, upload, number, key, copy_range)
        assert etag == f'"{_md5(expected)}"', (key, copy_range)
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket="copies", Key="assembled", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    body = s3.get_object(Bucket="copies", Key="assembled")["Body"].read()
    assert body == b"".join(expected for _, _, expected in cases)
    for number, (_, _, expected) in enumerate(cases, 1):
        got = s3.get_object(Bucket="copies", Key="assembled", PartNumber=number)
        assert got["Body"].read() == expected


def test_a_small_range_of_a_large_object_does_not_read_the_object(server: ServerProcess) -> None:
    s3 = server.client("s3")
    upload = s3.create_multipart_upload(Bucket="copies", Key="tiny")["UploadId"]
    assert server.proc is not None
    pid = server.proc.pid
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    etag = _copy_part(s3, upload, 1, "big.bin", f"bytes={SIZE // 2}-{SIZE // 2 + 99}", "tiny")
    growth = status_bytes(pid, "VmHWM") - before
    assert etag == f'"{_md5(_source_bytes(SIZE // 2, SIZE // 2 + 100))}"'
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB copying 100 bytes"
    s3.abort_multipart_upload(Bucket="copies", Key="tiny", UploadId=upload)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_a_copy_that_asks_for_a_new_checksum_computes_it_as_it_streams(
    server: ServerProcess,
) -> None:
    """CopyObject with ChecksumAlgorithm: moto read the copy whole to checksum it."""
    s3 = server.client("s3")
    assert server.proc is not None
    pid = server.proc.pid
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    copied = s3.copy_object(
        Bucket="copies",
        Key="summed.bin",
        CopySource={"Bucket": "copies", "Key": "big.bin"},
        ChecksumAlgorithm="SHA256",
    )
    growth = status_bytes(pid, "VmHWM") - before
    whole = hashlib.sha256()
    for i in range(SIZE // MB):
        whole.update(block(i, b"part-copy"))
    assert copied["CopyObjectResult"]["ChecksumSHA256"] == _b64(whole.digest())
    head = s3.head_object(Bucket="copies", Key="summed.bin", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == _b64(whole.digest())
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB copying {SIZE // MB} MB"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_copy_checksums_equal_moto_s_for_small_and_large_objects(
    server: ServerProcess, algorithm: str
) -> None:
    s3 = server.client("s3")
    for size in (5000, 9 * MB):  # moto's own path, the streamed one
        body = _source_bytes(0, size)
        s3.put_object(Bucket="copies", Key=f"src-{size}", Body=body)
        copied = s3.copy_object(
            Bucket="copies",
            Key=f"dst-{size}-{algorithm}",
            CopySource={"Bucket": "copies", "Key": f"src-{size}"},
            ChecksumAlgorithm=algorithm,
        )["CopyObjectResult"]
        # what the client computes for the same bytes
        reference = s3.put_object(
            Bucket="copies", Key=f"ref-{size}", Body=body, ChecksumAlgorithm=algorithm
        )
        assert copied[f"Checksum{algorithm}"] == reference[f"Checksum{algorithm}"], size
        assert copied["ETag"] == f'"{_md5(body)}"'
        got = s3.get_object(Bucket="copies", Key=f"dst-{size}-{algorithm}", ChecksumMode="ENABLED")
        assert got[f"Checksum{algorithm}"] == reference[f"Checksum{algorithm}"]
        assert got["Body"].read() == body  # botocore checked it against the checksum too
