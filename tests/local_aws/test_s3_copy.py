"""S3 as boto3 reads it back: a copy of a multipart object reads without a checksum error
(botocore checks whole-object checksums on every GetObject)."""

from __future__ import annotations

import io
import os

from boto3.s3.transfer import TransferConfig

from tests.conftest import unique


def test_a_copy_of_a_multipart_object_reads_back_checked(s3, bucket):
    data = os.urandom(12 * 1024 * 1024)
    source, copy = unique("multipart"), unique("copy")
    config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    s3.upload_fileobj(io.BytesIO(data), bucket, source, Config=config)
    s3.copy_object(Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": source})
    for key in (source, copy):
        response = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert b"".join(response["Body"].iter_chunks(1 << 20)) == data, key
        # a composite checksum (of the parts), which botocore knows not to check whole
        assert response.get("ChecksumType") == "COMPOSITE", key
        assert response["ChecksumCRC32"].endswith("-3"), key
