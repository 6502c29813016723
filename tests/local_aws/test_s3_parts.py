"""A completed multipart object's parts are ranges of its body.

GetObject/HeadObject with PartNumber answer as S3 does (206, the part's Content-Range in
the object, PartsCount, the object's ETag), from the joined body (moto answered a GET with
the whole object, a HEAD with the part's ETag); after a restart from the journal's
snapshot too (moto's parts came back with a size of 0), which holds the object once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local_aws.test_journal import Run, isolated_moto  # noqa: F401  (autouse fixture)
from tests.memkit import MB

BODIES = (9 * MB, 6 * MB, 1234)


def _upload(s3: Any, bucket: str, key: str) -> tuple[list[bytes], str]:
    """A three-part upload (the last part small); its bodies and the object's ETag."""
    bodies = [os.urandom(size) for size in BODIES]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    # a part uploaded and then left out of the completion: S3 drops it
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=9, Body=b"dropped")
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=body
            )["ETag"],
        }
        for n, body in enumerate(bodies, 1)
    ]
    etag = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )["ETag"]
    md5s = b"".join(hashlib.md5(body, usedforsecurity=False).digest() for body in bodies)
    assert etag == f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-3"'
    return bodies, etag


def _assert_parts(s3: Any, bucket: str, key: str, bodies: list[bytes], etag: str) -> None:
    size = sum(len(body) for body in bodies)
    start = 0
    for number, body in enumerate(bodies, 1):
        content_range = f"bytes {start}-{start + len(body) - 1}/{size}"
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=number, ChecksumMode="ENABLED")
        head = s3.head_object(Bucket=bucket, Key=key, PartNumber=number)
        for answer in (got, head):
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert answer["ContentRange"] == content_range
            assert answer["ContentLength"] == len(body)
            assert answer["PartsCount"] == len(bodies)
            assert answer["ETag"] == etag  # the object's, as on S3
        assert got["Body"].read() == body
        start += len(body)
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=len(bodies) + 1)
    assert caught.value.response["Error"]["Code"] == "InvalidPartNumber"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    whole = s3.get_object(Bucket=bucket, Key=key)
    assert (whole["ETag"], whole["Body"].read()) == (etag, b"".join(bodies))


def test_parts_of_a_completed_upload_answer_as_ranges_of_the_object(s3: Any, bucket: str) -> None:
    bodies, etag = _upload(s3, bucket, "model.tar.gz")
    _assert_parts(s3, bucket, "model.tar.gz", bodies, etag)
    # a copy of it is one part on S3 (moto gave it its source's parts)
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "model.tar.gz"})
    size = sum(len(body) for body in bodies)
    for answer in (
        s3.get_object(Bucket=bucket, Key="copy", PartNumber=1),
        s3.head_object(Bucket=bucket, Key="copy", PartNumber=1),
    ):
        assert answer["ContentRange"] == f"bytes 0-{size - 1}/{size}"
        assert "PartsCount" not in answer
        assert (
            answer["ETag"]
            == f'"{hashlib.md5(b"".join(bodies), usedforsecurity=False).hexdigest()}"'
        )
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key="copy", PartNumber=2)
    assert caught.value.response["Error"]["Code"] == "InvalidPartNumber"
    # an object put whole is its own part 1, as moto answered it before
    s3.put_object(Bucket=bucket, Key="single", Body=b"hello")
    single = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert single["ContentRange"] == "bytes 0-4/5"
    assert single["Body"].read() == b"hello"


def test_parts_answer_after_a_restart_from_a_snapshot_that_holds_the_object_once(
    tmp_path: Path,
) -> None:
    from local_aws import s3join

    s3join.install()  # as LocalAWS does at start
    journal_dir = tmp_path / "journal"
    with Run(journal_dir, compact_every=0) as run:
        s3 = run.client("s3")
        s3.create_bucket(Bucket="snap")
        bodies, etag = _upload(s3, "snap", "k")
        assert run.journal.compact()
    blobs = sum(p.stat().st_size for p in (journal_dir / "blobs").glob("snap-*"))
    size = sum(len(body) for body in bodies)
    # the parts are no blobs of their own beside the object's
    assert size <= blobs < size + MB, f"snapshot blobs {blobs / MB:.1f} MB for {size / MB:.1f} MB"
    with Run(journal_dir, compact_every=0) as run:  # restored from the snapshot
        _assert_parts(run.client("s3"), "snap", "k", bodies, etag)


def test_a_range_with_a_part_number_is_refused_as_on_s3(s3: Any, bucket: str) -> None:
    bodies, _ = _upload(s3, bucket, "both")
    with pytest.raises(ClientError) as caught:  # moto answered the part, ignoring the range
        s3.get_object(Bucket=bucket, Key="both", PartNumber=1, Range="bytes=0-9")
    assert caught.value.response["Error"] == {
        "Code": "InvalidRequest",
        "Message": "Cannot specify both Range header and partNumber query parameter",
    }
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=bucket, Key="both", PartNumber=1, Range="bytes=0-9")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert (
        s3.get_object(Bucket=bucket, Key="both", Range="bytes=0-9")["Body"].read()
        == (bodies[0][:10])
    )


def test_an_upload_that_is_gone_is_no_such_upload_not_a_server_error(s3: Any, bucket: str) -> None:
    """Aborted, completed or never created: S3's 404 NoSuchUpload (moto answered 500)."""
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=1, Body=b"x")[
        "ETag"
    ]
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted)
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    s3.put_object(Bucket=bucket, Key="source", Body=b"abc")
    copy_source = {"Bucket": bucket, "Key": "source"}
    for upload in (aborted, "never-created"):
        common = {"Bucket": bucket, "Key": "gone", "UploadId": upload}
        for call, extra in (
            (s3.complete_multipart_upload, {"MultipartUpload": parts}),
            (s3.upload_part, {"PartNumber": 2, "Body": b"y"}),
            (s3.upload_part_copy, {"PartNumber": 2, "CopySource": copy_source}),
        ):
            with pytest.raises(ClientError) as caught:
                call(**common, **extra)
            assert caught.value.response["Error"]["Code"] == "NoSuchUpload", call
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="gone")  # nothing was created on the way
