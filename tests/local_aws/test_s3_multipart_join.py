"""CompleteMultipartUpload joins the parts without holding the object in memory.

Driven against a real `local-aws serve` process with boto3's own multipart upload (the
way ``upload_file`` and SageMaker's output upload send large files): the object reads back
byte for byte with S3's multipart ETag and the checksums the client asked for, and the
server's peak RSS (VmHWM, from /proc) grows by far less than the object meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import zlib
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.memkit import MB, block, reset_peak, status_bytes

SIZE = 320 * MB  # 20 parts
PART = 16 * MB
#: Peak RSS growth allowed during the whole upload: moto's own join held the object twice
#: (its bytearray, then bytes of it), and a third time for a full-object checksum.
GROWTH_LIMIT = 120 * MB


def _crc32(data: bytes, value: int = 0) -> int:
    return zlib.crc32(data, value)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read the server's memory")
    proc = ServerProcess(tmp_path_factory.mktemp("join") / "aws").start()
    try:
        yield proc
    finally:
        proc.stop()


def test_a_large_multipart_upload_round_trips_without_the_object_in_memory(
    server: ServerProcess, tmp_path: Path
) -> None:
    from boto3.s3.transfer import TransferConfig

    source = tmp_path / "source.bin"
    whole, part_md5s = hashlib.sha256(), []
    with open(source, "wb") as f:
        for first in range(0, SIZE // MB, PART // MB):
            part = b"".join(block(i, b"multipart") for i in range(first, first + PART // MB))
            f.write(part)
            whole.update(part)
            part_md5s.append(hashlib.md5(part, usedforsecurity=False).digest())
    s3 = server.client("s3")
    s3.create_bucket(Bucket="joined")
    assert server.proc is not None
    pid = server.proc.pid
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2)
    s3.upload_file(str(source), "joined", "model.tar.gz", Config=config)
    growth = status_bytes(pid, "VmHWM") - before
    source.unlink()

    expected_etag = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    head = s3.head_object(Bucket="joined", Key="model.tar.gz")
    assert head["ETag"] == f'"{expected_etag}-{len(part_md5s)}"'
    assert head["ContentLength"] == SIZE
    got, size = hashlib.sha256(), 0
    for chunk in s3.get_object(Bucket="joined", Key="model.tar.gz")["Body"].iter_chunks(MB):
        got.update(chunk)
        size += len(chunk)
    assert size == SIZE
    assert got.hexdigest() == whole.hexdigest()
    assert growth < GROWTH_LIMIT, (
        f"server RSS grew {growth / MB:.0f} MB for a {SIZE // MB} MB upload"
    )


def test_a_large_copy_goes_file_to_file(server: ServerProcess, tmp_path: Path) -> None:
    """CopyObject (batch_inference's publish copies the transform's multipart output):
    moto handed the whole source object to the copy as bytes."""
    from boto3.s3.transfer import TransferConfig

    size = 160 * MB
    source = tmp_path / "out.csv"
    whole = hashlib.sha256()
    with open(source, "wb") as f:
        for i in range(size // MB):
            f.write(block(1000 + i, b"multipart"))
            whole.update(block(1000 + i, b"multipart"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket="copies")
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2)
    s3.upload_file(
        str(source), "copies", "staging/out.csv", Config=config, ExtraArgs={"Metadata": {"a": "1"}}
    )
    source.unlink()
    assert server.proc is not None
    pid = server.proc.pid
    before = status_bytes(pid, "VmRSS")
    reset_peak(pid)
    copied = s3.copy_object(
        Bucket="copies", Key="published/out.csv", CopySource="copies/staging/out.csv"
    )
    growth = status_bytes(pid, "VmHWM") - before

    got, length, md5 = hashlib.sha256(), 0, hashlib.md5(usedforsecurity=False)
    answer = s3.get_object(Bucket="copies", Key="published/out.csv")
    for chunk in answer["Body"].iter_chunks(MB):
        got.update(chunk)
        md5.update(chunk)
        length += len(chunk)
    assert (length, got.hexdigest()) == (size, whole.hexdigest())
    assert copied["CopyObjectResult"]["ETag"] == answer["ETag"] == f'"{md5.hexdigest()}"'
    assert answer["Metadata"] == {"a": "1"}  # the copy keeps the source's metadata
    assert growth < GROWTH_LIMIT, f"server RSS grew {growth / MB:.0f} MB copying {size // MB} MB"
    # the source is untouched by the copy
    assert s3.head_object(Bucket="copies", Key="staging/out.csv")["ContentLength"] == size


@pytest.mark.parametrize(
    ("algorithm", "checksum_type"),
    [("CRC32", "COMPOSITE"), ("CRC32", "FULL_OBJECT"), ("SHA256", "COMPOSITE"), ("SHA1", None)],
)
def test_checksums_of_the_joined_object_are_the_ones_asked_for(
    server: ServerProcess, algorithm: str, checksum_type: str | None
) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="sums")
    bodies = [os.urandom(9 * MB), os.urandom(5 * MB), b"the last part may be small"]
    extra = {"ChecksumType": checksum_type} if checksum_type else {}
    upload = s3.create_multipart_upload(
        Bucket="sums", Key="k", ChecksumAlgorithm=algorithm, **extra
    )["UploadId"]
    parts = []
    for number, body in enumerate(bodies, 1):
        answer = s3.upload_part(
            Bucket="sums",
            Key="k",
            UploadId=upload,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm=algorithm,
        )
        parts.append(
            {
                "PartNumber": number,
                "ETag": answer["ETag"],
                f"Checksum{algorithm}": answer[f"Checksum{algorithm}"],
            }
        )
    s3.complete_multipart_upload(
        Bucket="sums", Key="k", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket="sums", Key="k", ChecksumMode="ENABLED")

    def digest(data: bytes) -> bytes:
        if algorithm == "CRC32":
            return _crc32(data).to_bytes(4, "big")
        return hashlib.new(algorithm.lower(), data).digest()

    if checksum_type == "FULL_OBJECT":
        expected = _b64(digest(b"".join(bodies)))
    else:  # S3's composite: the checksum of the parts' checksums, then their count
        expected = _b64(digest(b"".join(digest(body) for body in bodies))) + "-3"
    assert got[f"Checksum{algorithm}"] == expected
    assert got["ChecksumType"] == (checksum_type or "COMPOSITE")
    md5s = b"".join(hashlib.md5(body, usedforsecurity=False).digest() for body in bodies)
    assert got["ETag"] == f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-3"'
    assert got["Body"].read() == b"".join(bodies)


def test_bad_completions_keep_their_aws_errors_and_leave_no_body_behind(
    server: ServerProcess,
) -> None:
    from botocore.exceptions import ClientError

    s3 = server.client("s3")
    s3.create_bucket(Bucket="bad")
    upload = s3.create_multipart_upload(Bucket="bad", Key="k")["UploadId"]
    small = s3.upload_part(Bucket="bad", Key="k", UploadId=upload, PartNumber=1, Body=b"x")
    tail = s3.upload_part(Bucket="bad", Key="k", UploadId=upload, PartNumber=2, Body=b"y")
    cases = {
        "InvalidPart": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}],
        "EntityTooSmall": [
            {"PartNumber": 1, "ETag": small["ETag"]},
            {"PartNumber": 2, "ETag": tail["ETag"]},
        ],
    }
    for code, parts in cases.items():
        with pytest.raises(ClientError) as caught:
            s3.complete_multipart_upload(
                Bucket="bad", Key="k", UploadId=upload, MultipartUpload={"Parts": parts}
            )
        assert caught.value.response["Error"]["Code"] == code
    # the next object created by the same server gets its own body, not a joined one
    s3.put_object(Bucket="bad", Key="after", Body=b"")
    assert s3.get_object(Bucket="bad", Key="after")["Body"].read() == b""
    s3.complete_multipart_upload(
        Bucket="bad",
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": tail["ETag"]}]},
    )
    assert s3.get_object(Bucket="bad", Key="k")["Body"].read() == b"y"


def test_a_joined_object_survives_a_kill_and_a_compaction(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "aws", args=("--compact-every", "1")).start()
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="kept")
        bodies = [os.urandom(9 * MB), os.urandom(6 * MB)]
        upload = s3.create_multipart_upload(Bucket="kept", Key="k")["UploadId"]
        parts = [
            {
                "PartNumber": n,
                "ETag": s3.upload_part(
                    Bucket="kept", Key="k", UploadId=upload, PartNumber=n, Body=body
                )["ETag"],
            }
            for n, body in enumerate(bodies, 1)
        ]
        etag = s3.complete_multipart_upload(
            Bucket="kept", Key="k", UploadId=upload, MultipartUpload={"Parts": parts}
        )["ETag"]
        server.stop(signal.SIGKILL)
        server.start()
        s3 = server.client("s3")
        got = s3.get_object(Bucket="kept", Key="k")
        assert got["ETag"] == etag
        assert got["Body"].read() == b"".join(bodies)
    finally:
        server.stop()
