"""CompleteMultipartUpload joins the parts file to file, never as one ``bytes`` of the object.

moto's ``FakeMultipart.complete`` concatenates every part's ``value`` into one bytearray
(and, for a full-object checksum, into a second one), then ``bytes()`` copies it again,
and ``S3Backend.complete_multipart_upload`` hands that to ``put_object``: a 2 GB upload in
parts held several GB. Two narrow patches:

* ``S3Backend.complete_multipart_upload`` runs with a thread-local flag set, and clears
  whatever it left pending when it returns or raises.
* ``FakeMultipart.complete``, while the flag is set, checks the parts as moto does, copies
  them in chunks into a temporary file (the ETag and the checksums computed on the way),
  and returns an empty value; :func:`local_aws.s3stream.adopt_next` makes that file the
  body of the key ``put_object`` then creates.
* Once the key is made, its upload's parts become ranges of that body
  (:func:`local_aws.s3parts.keep_as_ranges`), which answer GetObject/HeadObject with
  ``PartNumber``.

The attributes patched are checked at import (and the running checksums, by
:mod:`local_aws.s3checksums`), so a moto that changes either fails loudly here instead of
silently joining in memory again or giving other checksums.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import hashlib
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from moto.s3 import models as s3_models
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.utils import compute_checksum

from local_aws import motopatch, s3parts, s3stream
from local_aws.s3checksums import running_checksum

_PATCH = "local_aws.s3join (CompleteMultipartUpload)"
_original_complete = motopatch.original(s3_models.FakeMultipart, "complete", _PATCH)
_original_complete_upload = motopatch.original(
    s3_models.S3Backend, "complete_multipart_upload", _PATCH
)
if not hasattr(s3_models, "MultipartChecksumBuilder") or not hasattr(
    s3_models, "S3_UPLOAD_PART_MIN_SIZE"
):
    raise ImportError(
        "local_aws.s3join: moto's MultipartChecksumBuilder or S3_UPLOAD_PART_MIN_SIZE is "
        "gone; the CompleteMultipartUpload patch needs revisiting for this moto version"
    )

_completing = threading.local()  # .active: inside S3Backend.complete_multipart_upload


def _checked_parts(multipart: Any, body: Iterator[tuple[int, str]]) -> tuple[list[Any], str]:
    """The parts that ``body`` (number, ETag) names, checked as moto checks them, and the
    multipart ETag (the MD5 of the parts' MD5s, then ``-`` and their count)."""
    decode_hex = codecs.getdecoder("hex_codec")
    parts: list[Any] = []
    md5s = bytearray()
    for number, etag in body:
        part = multipart.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < s3_models.S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(decode_hex(part.etag.replace('"', ""))[0])  # type: ignore[arg-type]
        parts.append(part)
    if not parts:
        raise MalformedXML()
    return parts, f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(parts)}"


def _join(multipart: Any, parts: list[Any], out: Any) -> tuple[str, str, int]:
    """Copy ``parts`` into ``out`` in chunks; the checksum details moto would give."""
    # moto's builder decides the defaults (CRC64NVME, FULL_OBJECT or COMPOSITE)
    builder = s3_models.MultipartChecksumBuilder(
        multipart.metadata.get("x-amz-checksum-algorithm"),
        multipart.metadata.get("x-amz-checksum-type"),
    )
    algorithm, composite = builder.checksum_algorithm, builder.checksum_type == "COMPOSITE"
    whole = running_checksum(algorithm)
    of_parts = bytearray()
    for part in parts:
        source = s3stream.Source(part)
        running = running_checksum(algorithm) if composite else whole
        try:
            for chunk in s3stream.KeyBody(source):
                out.write(chunk)
                running.update(chunk)
        finally:
            source.close()
        if composite:
            of_parts.extend(running.digest())
    out.flush()
    if composite:
        return "COMPOSITE", compute_checksum(bytes(of_parts), algorithm).decode(), len(parts)
    return builder.checksum_type, binascii.b2a_base64(whole.digest(), newline=False).decode(), 1


@functools.wraps(_original_complete)
def _complete(self: Any, body: Iterator[tuple[int, str]]) -> Any:
    if not getattr(_completing, "active", False):
        return _original_complete(self, body)
    parts, etag = _checked_parts(self, body)
    size = sum(part.contentsize for part in parts)
    # the key's own kind of buffer, so that moto (and the journal's snapshots) see no change
    max_size = parts[0]._max_buffer_size  # noqa: SLF001
    joined = tempfile.SpooledTemporaryFile(max_size)  # noqa: SIM115
    try:
        if size > max_size:  # straight to the file, not through memory
            joined.rollover()
        checksum = _join(self, parts, joined)
    except BaseException:
        joined.close()
        raise
    s3stream.adopt_next(joined, size)
    _completing.parts = [(part.name, part.contentsize, part.etag) for part in parts]
    return b"", etag, checksum


@functools.wraps(_original_complete_upload)
def _complete_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
    _completing.active, _completing.parts = True, None
    try:
        key = _original_complete_upload(self, *args, **kwargs)
        parts = _completing.parts
    finally:
        _completing.active, _completing.parts = False, None
        s3stream.adopt_next(None, 0)  # nothing left for a later key if moto raised
    if key is not None and key.multipart is not None and parts is not None:
        # the parts' own files go: a part is a range of the joined body from now on
        s3parts.keep_as_ranges(key.multipart, parts)
    return key


def install() -> None:
    """Patch moto (process-wide, idempotent)."""
    s3stream.install()  # the joined file becomes the key's body through s3stream's setter
    if s3_models.FakeMultipart.__dict__["complete"] is _original_complete:
        s3_models.FakeMultipart.complete = _complete  # type: ignore[method-assign]
        s3_models.S3Backend.complete_multipart_upload = _complete_upload  # type: ignore[method-assign]
    s3parts.install()  # GetObject/HeadObject with PartNumber answer from those ranges
