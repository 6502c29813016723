"""Where moto's S3 answers differently from S3 in a way a client notices, and the narrow fix.

CopyObject of a multipart object: moto copies the source's checksum value but not its type,
so the copy claims a whole-object CRC that is really the composite of the parts, and
botocore, which checks a whole-object checksum on every GetObject read, fails the read with
FlexibleChecksumError (batch_inference's publish copies the transform's multipart output;
reading a large published day failed). The copy keeps the composite type and part count,
which botocore knows it cannot check.

CopyObject of a large object, and UploadPartCopy of a large range (boto3's managed
``copy``), go file to file (``local_aws.s3stream.copying``), not through one ``bytes`` of
the object.

UploadPart, UploadPartCopy and CompleteMultipartUpload of an upload that does not exist (never
created, aborted or already completed): moto indexes its uploads without a check and answers
HTTP 500 (a KeyError); S3 answers 404 NoSuchUpload, which clients and retry logic know.
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_local_aws_copy_keeps_checksum_type"


def install() -> None:
    """Patch moto once (idempotent); fails loudly if moto's shape changed under us."""
    from moto.s3.models import FakeKey, S3Backend

    original = S3Backend.copy_object
    if getattr(original, _MARK, False):
        return
    probe = FakeKey.__init__.__code__.co_varnames
    assert "checksum_type" in probe and "checksum_parts" in probe, (
        "moto's FakeKey has no checksum_type/checksum_parts: revisit local_aws.s3fixes"
    )

    @functools.wraps(original)
    def copy_object(
        self: Any,
        src_key: Any,
        dest_bucket_name: str,
        dest_key_name: str,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        from local_aws import s3stream

        with s3stream.copying(src_key):  # file to file, not the object as bytes
            result = original(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)
        if src_key.checksum_value and src_key.checksum_type:
            copied = self.get_object(dest_bucket_name, dest_key_name)
            if copied is not None and copied.checksum_value == src_key.checksum_value:
                copied.checksum_type = src_key.checksum_type
                copied.checksum_parts = src_key.checksum_parts
        return result

    setattr(copy_object, _MARK, True)
    S3Backend.copy_object = copy_object  # type: ignore[method-assign]
    S3Backend.upload_part_copy = _known_upload(_streamed_part_copy(S3Backend.upload_part_copy))  # type: ignore[method-assign]
    S3Backend.upload_part = _known_upload(S3Backend.upload_part)  # type: ignore[method-assign]
    S3Backend.complete_multipart_upload = _known_upload(S3Backend.complete_multipart_upload)  # type: ignore[method-assign]


def copied_range(size: int, start_byte: int | None, end_byte: int | None) -> tuple[int, int]:
    """The bytes [start, stop) of a ``size``-byte source that moto's UploadPartCopy copies:
    ``value[start_byte : end_byte + 1]``, or the whole value without a range."""
    if start_byte is None or end_byte is None:
        return 0, size
    start, stop, _ = slice(start_byte, end_byte + 1).indices(size)
    return start, max(stop, start)


def _streamed_part_copy(original: Any) -> Any:
    """moto's ``S3Backend.upload_part_copy``, with a large range copied file to file: moto
    reads the whole source object into memory, then slices the range out of it."""

    @functools.wraps(original)
    def upload_part_copy(
        self: Any,
        dest_bucket_name: str,
        multipart_id: str,
        part_id: int,
        src_bucket_name: str,
        src_key_name: str,
        src_version_id: str | None,
        start_byte: int | None,
        end_byte: int | None,
    ) -> Any:
        from local_aws import s3stream

        args = (dest_bucket_name, multipart_id, part_id, src_bucket_name, src_key_name)
        args_tail = (src_version_id, start_byte, end_byte)
        src_key = self.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
        if src_key is None:  # moto's own error
            return original(self, *args, *args_tail)
        start, stop = copied_range(src_key.contentsize, start_byte, end_byte)
        with s3stream.copying(src_key, start, stop):
            return original(self, *args, *args_tail)

    setattr(upload_part_copy, _MARK, True)
    return upload_part_copy


def _known_upload(original: Any) -> Any:
    """moto's backend method whose first two arguments are a bucket and an upload id, raising
    S3's NoSuchUpload for an upload the bucket does not have instead of a KeyError (HTTP 500).
    """

    @functools.wraps(original)
    def checked(self: Any, bucket_name: str, multipart_id: str, *args: Any, **kwargs: Any) -> Any:
        from moto.s3.exceptions import NoSuchUpload

        if multipart_id not in self.get_bucket(bucket_name).multiparts:
            raise NoSuchUpload(upload_id=multipart_id)
        return original(self, bucket_name, multipart_id, *args, **kwargs)

    return checked
