"""A completed multipart object answers PartNumber requests from ranges of its body.

moto closes the files of an upload's parts when it completes (``MultipartDict.__delitem__``
disposes them), so the parts cost no second copy on disk; but it keeps them as
``FakeKey`` objects without a body, and from those: GetObject with ``PartNumber`` answered
with the whole object (HTTP 200), HeadObject with the part's own ETag, and after a restart
from a journal snapshot (which pickles a disposed key's body as empty) with a
``Content-Length`` of 0. Once the parts are joined (:mod:`local_aws.s3join`),
:func:`keep_as_ranges` replaces them by :class:`PartRange` (number, offset, size, ETag),
which a snapshot keeps as a few numbers.

A part is then answered as S3 answers it (a CopyObject's copy, which moto gives its
source's upload, as the one part it is on S3): the bytes of its range of the object, HTTP 206,
``Content-Range`` of the part within the object, ``x-amz-mp-parts-count``, the object's own
ETag, and no checksum header (the object's checksum does not describe a part; moto gave
none for a part either). A part number past the object's parts is S3's 416
``InvalidPartNumber``; a ``Range`` asked for with a part number is S3's 400
``InvalidRequest`` (moto answered the part).

Objects completed before this (parts still ``FakeKey``, e.g. from an older snapshot) keep
moto's own answers. Two narrow patches, installed by :func:`local_aws.s3join.install`:
``S3Backend.get_object`` (only HeadObject passes it a part number) and
``S3Response.head_object``; GetObject goes through :func:`answer_get`, called by
:mod:`local_aws.s3stream`'s GetObject patch.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

from moto.s3.models import FakeKey, S3Backend
from moto.s3.responses import S3Response

from local_aws import motopatch


@dataclass(frozen=True)
class PartRange:
    """Part ``number`` of a completed object: ``size`` bytes from ``start`` of its body."""

    number: int
    start: int
    size: int
    etag: str

    def dispose(self) -> None:
        """Nothing to close (moto's ``FakeMultipart.dispose`` disposes every part)."""


def keep_as_ranges(multipart: Any, parts: list[tuple[int, int, str]]) -> None:
    """Replace ``multipart``'s parts by ranges of the joined object (and dispose them, in
    case moto stops doing so itself).

    ``parts``: (number, size, ETag) of the parts joined, in the object's order. Parts
    uploaded but left out of the completion are dropped, as S3 drops them.
    """
    ranges: dict[int, PartRange] = {}
    start = 0
    for number, size, etag in parts:
        ranges[number] = PartRange(number, start, size, etag)
        start += size
    old = multipart.parts
    multipart.parts, multipart.partlist = ranges, list(ranges)
    for part in old.values():
        part.dispose()


def parts_of(key: Any) -> tuple[dict[int, PartRange], int | None] | None:
    """The part ranges of an object with a completed upload's parts, and its parts count;
    None for any other object (moto's own answers).

    A CopyObject's copy shares its source's upload in moto, but it is one part on S3 (its
    ETag is no multipart ETag): part 1 is the whole object, and it has no parts count.
    """
    multipart = getattr(key, "multipart", None)
    if multipart is None or not multipart.parts:
        return None
    parts = multipart.parts
    if not all(isinstance(part, PartRange) for part in parts.values()):
        return None  # completed before parts became ranges: moto's own answers
    if not key.etag.endswith(f'-{len(parts)}"'):
        return {1: PartRange(1, 0, key.size, key.etag)}, None
    return parts, len(parts)


_INVALID_PART = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidPartNumber</Code>'
    b"<Message>The requested partnumber is not satisfiable</Message></Error>"
)


def _invalid_part() -> tuple[int, dict[str, str], bytes]:
    return 416, {"Content-Type": "application/xml"}, _INVALID_PART


def _as_part(headers: dict[str, Any], part: PartRange, size: int, count: int | None) -> None:
    """Turn a whole object's headers into those of one of its parts."""
    for name in [h for h in headers if h.lower().startswith("x-amz-checksum-")]:
        del headers[name]
    replaced = ("content-length", "content-range", "x-amz-mp-parts-count")
    for name in [h for h in headers if h.lower() in replaced]:
        del headers[name]
    headers["content-length"] = str(part.size)
    last = part.start + part.size - 1
    headers["content-range"] = f"bytes {part.start}-{last}/{size}"
    if count is not None:
        headers["x-amz-mp-parts-count"] = str(count)


_RANGE_WITH_PART = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRequest</Code>'
    b"<Message>Cannot specify both Range header and partNumber query parameter</Message></Error>"
)


def refused_range_with_part(request: Any) -> tuple[int, dict[str, str], bytes] | None:
    """S3's 400 for a GetObject/HeadObject that asks for a ``Range`` and a ``partNumber`` at
    once (moto answers the part and ignores the range), or None for any other request."""
    if "partNumber" not in request.querystring or not request.headers.get("Range"):
        return None
    return 400, {"Content-Type": "application/xml"}, _RANGE_WITH_PART


def _part_number(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def answer_get(key: Any, part_number: Any, response: Any) -> Any:
    """moto's GetObject ``response`` for ``key``, made the answer for part ``part_number``
    if ``key`` is a multipart object with part ranges (moto answers it with the whole)."""
    number = _part_number(part_number)
    found = parts_of(key)
    if number is None or found is None or response[0] != 200:
        return response
    ranges, count = found
    part = ranges.get(number)
    if part is None:
        return _invalid_part()
    status, headers, body = response
    del status
    _as_part(headers, part, key.size, count)
    return 206, headers, body[part.start : part.start + part.size]


_asked = threading.local()  # .part: (whole key, its PartRange or None, count) for a HEAD


_PATCH = "local_aws.s3parts (PartNumber)"
_original_get = motopatch.original(S3Backend, "get_object", _PATCH)
_original_head = motopatch.original(S3Response, "head_object", _PATCH)


@functools.wraps(_original_get)
def _get_object(
    self: Any,
    bucket_name: str,
    key_name: str,
    version_id: str | None = None,
    part_number: Any = None,
    return_delete_marker: bool = False,
) -> Any:
    if part_number:
        whole = _original_get(self, bucket_name, key_name, version_id, None, return_delete_marker)
        found = parts_of(whole) if isinstance(whole, FakeKey) else None
        if found is not None:
            # moto would index the parts for a FakeKey of the part; the whole key answers,
            # and the HEAD patch below makes its headers the part's
            ranges, count = found
            _asked.part = (whole, ranges.get(_part_number(part_number) or 0), count)
            return whole
    return _original_get(self, bucket_name, key_name, version_id, part_number, return_delete_marker)


@functools.wraps(_original_head)
def _head_object(self: Any, *args: Any, **kwargs: Any) -> Any:
    refused = refused_range_with_part(self)
    if refused is not None:
        return refused
    _asked.part = None
    try:
        response = _original_head(self, *args, **kwargs)
        asked = _asked.part
    finally:
        _asked.part = None
    if asked is None or response[0] != 200:
        return response
    whole, part, count = asked
    if part is None:
        return _invalid_part()
    status, headers, body = response
    del status
    _as_part(headers, part, whole.size, count)
    return 206, headers, body


def install() -> None:
    """Patch moto (process-wide, idempotent)."""
    if S3Backend.__dict__["get_object"] is _original_get:
        S3Backend.get_object = _get_object  # type: ignore[method-assign]
        S3Response.head_object = _head_object  # type: ignore[method-assign]
