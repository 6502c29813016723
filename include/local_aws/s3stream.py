"""S3 bodies to and from moto's key files in chunks, never as one ``bytes`` of the object.

moto keeps an object's body in its ``FakeKey._value_buffer`` (a SpooledTemporaryFile that
moves to a temporary file past moto's key buffer size), but it reads a request's body
into memory whole, and ``S3Response.get_object`` answers with ``key.value``: the whole
body read into memory, then sliced again for a Range (a 1 GB PutObject then GetObject
peaked at 2.4 GB). moto has no hook for streamed bodies, so narrow patches:

* GetObject: ``S3Response.get_object`` runs with a thread-local flag set, and
  ``FakeKey.value`` read while it is set (only by ``get_object``'s return statements)
  gives a :class:`KeyBody` instead of the bytes. A KeyBody has the length and the slicing
  that moto's Range handling uses, and flask/werkzeug send it as an iterable. With a
  ``PartNumber``, :func:`local_aws.s3parts.answer_get` slices it to the part.
* PutObject and UploadPart: :func:`wrap` shows moto a large body as empty and keeps the
  body's file aside; the ``FakeKey.value`` setter gives the key moto then creates the
  file's bytes, copied in chunks (``_set_value``). A checksum asked for without its value
  is computed from the file beforehand. An aws-chunked body (any size) is decoded and
  checked by :mod:`local_aws.s3chunked` into a buffer that :func:`adopt_next` makes the
  new key's.

* CompleteMultipartUpload: :mod:`local_aws.s3join` joins the parts into a file, and
  :func:`adopt_next` makes it the completed key's buffer.

* CopyObject and UploadPartCopy: :func:`copying` (entered by ``local_aws.s3fixes``) shows
  moto the source's value as empty and gives the new key (or part) the source's file, or
  the range of it copied, in chunks.

* CopyObject asking for a checksum algorithm: moto checksums the copy's ``value``; while
  ``S3Response.copy_object`` runs, the key it creates reads as a :class:`KeyBody`, which
  moto's ``compute_checksum`` (patched where ``moto.s3.responses`` imported it) feeds in
  chunks.

Everything else that reads ``key.value`` (a small copy, a body below
:data:`STREAM_PUT_MIN`) still gets bytes.
The attributes patched are checked at import, so a moto that renames them fails loudly
here instead of silently materialising bodies again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

from moto.s3 import responses as s3_responses
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response

from local_aws import s3checksums, s3chunked, s3parts

#: Bytes per chunk sent: large enough for few syscalls, small next to any memory budget.
CHUNK = 1 << 20

_found_value = FakeKey.__dict__.get("value")
if not isinstance(_found_value, property) or _found_value.fget is None or _found_value.fset is None:
    raise ImportError(
        "local_aws.s3stream: moto's FakeKey.value is no longer a settable property; "
        "the GetObject streaming patch needs revisiting for this moto version"
    )
_original_value: property = _found_value
_found_get_object = getattr(S3Response, "get_object", None)
if not callable(_found_get_object):
    raise ImportError(
        "local_aws.s3stream: moto's S3Response.get_object is gone; "
        "the GetObject streaming patch needs revisiting for this moto version"
    )

_original_get_object: Callable[[Any], Any] = _found_get_object
_original_copy_object: Callable[[Any], Any] = S3Response.copy_object
_original_compute_checksum: Callable[..., bytes] = getattr(s3_responses, "compute_checksum", None)  # type: ignore[assignment]
if not callable(_original_compute_checksum):
    raise ImportError(
        "local_aws.s3stream: moto.s3.responses no longer imports compute_checksum; "
        "the CopyObject checksum patch needs revisiting for this moto version"
    )
_streaming = threading.local()


class Source:
    """The object's bytes as they were when GetObject ran, readable at any offset.

    A body in a temporary file is read through a duplicate of its descriptor, with pread:
    no shared file position with moto (or another GetObject of the same key), and a key
    deleted or overwritten meanwhile (moto closes its buffer) does not cut the answer short.
    A body still in memory (below moto's buffer size) is small; it is copied.
    """

    def __init__(self, key: Any):
        buffer = key._value_buffer  # noqa: SLF001 - moto has no public handle on the file
        self.fd: int | None = None
        self.data = b""
        with key.lock:
            if getattr(buffer, "_rolled", False):  # in a real file (moto's buffer overflowed)
                buffer.flush()  # what moto wrote may still sit in the file object's buffer
                self.fd = os.dup(buffer.fileno())
                self.size = os.fstat(self.fd).st_size
                self._finalizer = weakref.finalize(self, os.close, self.fd)
            else:
                buffer.seek(0)
                self.data = buffer.read()
                self.size = len(self.data)

    def read(self, start: int, length: int) -> bytes:
        if self.fd is None:
            return self.data[start : start + length]
        return os.pread(self.fd, length, start)

    def close(self) -> None:
        if self.fd is not None:
            self._finalizer()  # closes the descriptor once


class KeyBody:
    """Bytes ``start`` to ``stop`` of an object, sent in chunks of :data:`CHUNK`."""

    def __init__(self, source: Source, start: int = 0, stop: int | None = None):
        self.source = source
        self.start = start
        self.stop = source.size if stop is None else stop

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __getitem__(self, item: slice) -> KeyBody:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("a KeyBody slices by a contiguous range only")
        start, stop, _ = item.indices(len(self))
        return KeyBody(self.source, self.start + start, self.start + max(stop, start))

    def __iter__(self) -> Iterator[bytes]:
        position = self.start
        while position < self.stop:
            data = self.source.read(position, min(CHUNK, self.stop - position))
            if not data:
                # the file shrank under us: fail the response (the client sees a short
                # body against its Content-Length) rather than send wrong bytes
                raise OSError(f"object body ended at byte {position} of {self.stop}")
            position += len(data)
            yield data

    def close(self) -> None:
        self.source.close()


def _value(key: Any) -> Any:
    if getattr(_streaming, "active", False):
        _streaming.key = key  # the key GetObject answers for (its parts, for a PartNumber)
        return KeyBody(Source(key))
    if getattr(_streaming, "copying", None) is key:
        return b""  # moto hands it to put_object, whose new key adopts the file (copying)
    if key is getattr(_streaming, "copy", None):
        # CopyObject reads its new key's value only to checksum it (_compute_checksum)
        return KeyBody(Source(key))
    return _original_value.fget(key)  # type: ignore[misc]


class _SourceFile:
    """Bytes ``start`` to ``stop`` of a :class:`Source`, read as a file: what :func:`_adopt`
    copies from."""

    def __init__(self, source: Source, start: int = 0, stop: int | None = None):
        self.source, self.start = source, start
        self.stop = source.size if stop is None else min(stop, source.size)
        self.position = start

    def seek(self, position: int) -> None:
        self.position = self.start + position

    def read(self, size: int) -> bytes:
        data = self.source.read(self.position, max(min(size, self.stop - self.position), 0))
        self.position += len(data)
        return data


@contextlib.contextmanager
def copying(src_key: Any, start: int = 0, stop: int | None = None) -> Iterator[None]:
    """While moto's ``S3Backend.copy_object`` or ``upload_part_copy`` runs: the source's
    ``value`` reads empty, and the key that moto creates for the copy (the object, or the
    part) gets bytes ``start`` to ``stop`` of the source, file to file.

    moto passes ``src_key.value`` (the whole object as bytes) to ``put_object``, or a slice
    of it to ``set_part``: batch_inference's publish copied a 10M-row output through
    memory, and boto3's managed copy of a large object copies it part by part. A copy
    from a small object keeps moto's own path (a small range of a large one does not:
    moto would read the whole source for it).
    """
    if src_key.contentsize < STREAM_PUT_MIN:
        yield
        return
    source = Source(src_key)
    _streaming.copying, _pending.body = src_key, _SourceFile(source, start, stop)
    try:
        yield
    finally:
        _streaming.copying, _pending.body = None, None
        source.close()


def _set_value(key: Any, new_value: bytes) -> None:
    buffer = key._value_buffer  # noqa: SLF001 - moto has no public handle on the file
    if getattr(_streaming, "in_copy", False):
        _streaming.copy = key  # the key a CopyObject creates (it creates no other)
    joined = getattr(_pending, "joined", None)
    if joined is not None and new_value == b"":
        # the key of a CompleteMultipartUpload (the parts, joined: local_aws.s3join) or of
        # an aws-chunked upload (the body, decoded: local_aws.s3chunked)
        _pending.joined = None
        key._value_buffer, key.contentsize, md5 = joined  # noqa: SLF001
        if md5 is not None:
            key._etag = md5  # noqa: SLF001 - else moto reads the file again for it
        buffer.close()
        return
    source = getattr(_pending, "body", None)
    if source is not None and new_value == b"":
        # the key of a PutObject/UploadPart that ``wrap`` showed moto without its body, or
        # of a CopyObject (``copying``): the body comes from that file
        _pending.body = None
        _adopt(key, buffer, source)
        return
    # moto writes the body into its SpooledTemporaryFile, which first copies it into an
    # in-memory BytesIO and only then, past its size, into a file: a second whole copy of
    # the body next to the request's. Rolled over first, the bytes go straight to the file.
    if len(new_value) > key._max_buffer_size and hasattr(buffer, "rollover"):  # noqa: SLF001
        buffer.rollover()
    _original_value.fset(key, new_value)  # type: ignore[misc]


def adopt_next(joined: Any, size: int, md5: str | None = None) -> None:
    """Make ``joined`` (a buffer of moto's kind, ``size`` bytes, MD5 ``md5`` if known) the
    body of the next key created in this thread with an empty value, instead of copying
    it; None forgets it."""
    _pending.joined = None if joined is None else (joined, size, md5)


def _adopt(key: Any, buffer: Any, source: Any) -> None:
    """Copy ``source`` (a file) into the key's buffer in chunks; its MD5 is the ETag."""
    buffer.seek(0)
    buffer.truncate()
    buffer.rollover()  # straight to moto's temporary file, not through memory
    source.seek(0)
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while chunk := source.read(CHUNK):
        buffer.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    buffer.flush()
    key.contentsize = size
    key._etag = digest.hexdigest()  # noqa: SLF001 - else moto reads the file again for it


@functools.wraps(_original_get_object)
def _get_object(self: Any) -> Any:
    refused = s3parts.refused_range_with_part(self)
    if refused is not None:
        return refused
    _streaming.active, _streaming.key = True, None
    try:
        response = _original_get_object(self)
        key = _streaming.key
    finally:
        _streaming.active, _streaming.key = False, None
    part_number = self.querystring.get("partNumber", [None])[0]
    if part_number is None or key is None:
        return response
    return s3parts.answer_get(key, part_number, response)  # a range of the joined body


@functools.wraps(_original_copy_object)
def _copy_object(self: Any) -> Any:
    _streaming.in_copy, _streaming.copy = True, None
    try:
        return _original_copy_object(self)
    finally:
        _streaming.in_copy, _streaming.copy = False, None


@functools.wraps(_original_compute_checksum)
def _compute_checksum(body: Any, algorithm: str, encode_base64: bool = True) -> bytes:
    """moto's ``compute_checksum``, fed in chunks when given a :class:`KeyBody` (the copy's
    body, for a CopyObject that asks for a checksum algorithm: moto read it whole)."""
    if not isinstance(body, KeyBody):
        return _original_compute_checksum(body, algorithm, encode_base64)
    running = s3checksums.running_checksum(algorithm)
    try:
        for chunk in body:
            running.update(chunk)
    finally:
        body.close()
    return s3checksums.b64(running).encode() if encode_base64 else running.digest()


def install() -> None:
    """Patch moto (process-wide, idempotent)."""
    if FakeKey.__dict__["value"] is _original_value:
        FakeKey.value = property(_value, _set_value)  # type: ignore[assignment]
        S3Response.get_object = _get_object  # type: ignore[method-assign]
        S3Response.copy_object = _copy_object  # type: ignore[method-assign]
        s3_responses.compute_checksum = _compute_checksum


#: A PutObject or UploadPart body at least this large reaches its key as a file.
STREAM_PUT_MIN = 8 << 20
#: Query parameters of a plain PutObject (boto3 adds x-id) or UploadPart.
_PUT_QUERY_KEYS = frozenset({"x-id", "partNumber", "uploadId"})

_pending = threading.local()  # .body: the request body file the next empty key value is


def wrap(app: Any) -> Any:
    """moto's WSGI app, with a large PutObject/UploadPart body copied file to file.

    moto reads a request's body into one ``bytes`` (``request.data``) before it handles
    it: a 2 GB upload held 2 GB. For a plain PutObject or UploadPart whose body is already
    a file (the journal spooled it to a blob), moto is shown an empty body instead, and the
    key that moto creates for it gets the file's bytes, copied in chunks (``_set_value``).
    A checksum asked for without its value (``x-amz-sdk-checksum-algorithm`` alone) is
    computed from the file first and given to moto as if the client had sent it.
    An aws-chunked body, whatever its size, is decoded by :mod:`local_aws.s3chunked` into
    the buffer the new key adopts, its trailing checksum checked on the way.
    """

    def streamed(environ: dict[str, Any], start_response: Any) -> Any:
        if not _is_upload(environ):
            return app(environ, start_response)
        if s3chunked.is_chunked(environ):
            return _chunked(app, environ, start_response)
        body = _file_body(environ)
        if body is None:
            return app(environ, start_response)
        changes = {"wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0"}
        algorithm = s3chunked.missing_checksum(environ)
        if algorithm is not None:  # moto would compute it from the (empty) body it sees
            changes[f"HTTP_X_AMZ_CHECKSUM_{algorithm}"] = _file_checksum(body, algorithm)
        undo = s3chunked.apply(environ, changes)
        _pending.body = body
        try:
            return app(environ, start_response)  # flask runs the view before it returns
        finally:
            _pending.body = None
            s3chunked.apply(environ, undo)

    return streamed


def _chunked(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """An aws-chunked PutObject/UploadPart: decoded and checked, then moto sees it plain."""
    try:
        decoded = s3chunked.decode(environ["wsgi.input"], environ, _key_buffer_size())
    except s3chunked.BodyError as error:
        return error.respond(start_response)
    undo = s3chunked.apply(environ, s3chunked.plain_environ(environ, decoded))
    adopt_next(decoded.buffer, decoded.size, decoded.md5)
    try:
        return app(environ, start_response)
    finally:
        left = getattr(_pending, "joined", None)
        adopt_next(None, 0)
        if left is not None:  # moto made no key (a failed precondition, say)
            left[0].close()
        s3chunked.apply(environ, undo)


def _key_buffer_size() -> int:
    from moto.settings import get_s3_default_key_buffer_size

    return get_s3_default_key_buffer_size()


def _file_checksum(body: Any, algorithm: str) -> str:
    running = s3checksums.running_checksum(algorithm)
    body.seek(0)
    while chunk := body.read(CHUNK):
        running.update(chunk)
    body.seek(0)
    return s3checksums.b64(running)


def _is_upload(environ: dict[str, Any]) -> bool:
    """Whether this is a PutObject or UploadPart (not a copy, nor any other PUT)."""
    if environ.get("REQUEST_METHOD") != "PUT" or "HTTP_X_AMZ_COPY_SOURCE" in environ:
        return False
    query = set(parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    return query <= _PUT_QUERY_KEYS and ("partNumber" in query) == ("uploadId" in query)


def _file_body(environ: dict[str, Any]) -> Any:
    """The request's body file, if this large PutObject or UploadPart can go file to file."""
    try:
        if int(environ.get("CONTENT_LENGTH") or 0) < STREAM_PUT_MIN:
            return None
        stream = environ["wsgi.input"]
        stream.fileno()  # a real file (the journal's blob), not the socket
    except (KeyError, ValueError, AttributeError, OSError):
        return None
    algorithm = environ.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM")
    if algorithm and algorithm not in s3checksums.ALGORITHMS:
        return None  # moto's own answer to an algorithm S3 does not know
    return stream
