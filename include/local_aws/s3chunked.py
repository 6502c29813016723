"""aws-chunked upload bodies decoded in chunks into the object's file, checked as S3 checks
them, never held whole in memory.

An SDK that sends a checksum as a trailer (botocore over HTTPS; ``Content-Encoding:
aws-chunked``, ``x-amz-content-sha256: STREAMING-...``) frames the body as
``<hex size>[;chunk-signature=...]\\r\\n<data>\\r\\n`` ... ``0\\r\\n<trailers>\\r\\n\\r\\n``.
moto decodes that from one ``bytes`` of the body, into another, and takes the checksum
from the trailer with a regular expression, without checking it.

:func:`decode` reads the framing from the request's stream (the journal's blob file for a
large body), writes the data into a buffer of the kind moto keeps a key's body in (rolled
over to its file first when the declared length says it will not fit in memory), and
computes the MD5 (the ETag) and the trailer's checksum on the way (or the checksum
``x-amz-sdk-checksum-algorithm`` asks for without a value, which S3 computes). A checksum that
differs is S3's ``BadDigest``, a decoded length other than ``x-amz-decoded-content-length``
is ``IncompleteBody``, broken framing is ``InvalidRequest``: the request fails and nothing
is stored. A signed upload (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``) whose seed
signature ``--verify-signatures`` checked has each chunk's signature, and the trailer's,
checked as it arrives (:mod:`local_aws.chunksig`): one that does not match is S3's 403
``SignatureDoesNotMatch``, nothing stored either. :func:`plain_environ` then tells moto
the request as if it had come unframed, with the checksum in its header
(``local_aws.s3stream.wrap`` makes the buffer the new key's body).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from local_aws import chunksig
from local_aws.s3checksums import ALGORITHMS, b64, running_checksum

_CHUNK = 1 << 20
#: A chunk header or trailer line longer than this is not aws-chunked framing.
_MAX_LINE = 4096
_MISSING = object()


class BodyError(Exception):
    """The body is not what its headers say: answered with S3's error, nothing stored."""

    def __init__(self, code: str, message: str, status: str = "400 Bad Request"):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def respond(self, start_response: Any) -> list[bytes]:
        from xml.sax.saxutils import escape

        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message></Error>"
        ).encode()
        start_response(
            self.status,
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


def _invalid(what: str) -> BodyError:
    return BodyError("InvalidRequest", f"The aws-chunked request body is malformed: {what}")


@dataclass
class Decoded:
    buffer: Any  # a SpooledTemporaryFile: moto's kind of key body
    size: int
    md5: str
    checksum: tuple[str, str] | None = None  # (algorithm, base64 value) of the trailer
    trailers: dict[str, str] = field(default_factory=dict)


def is_chunked(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_X_AMZ_CONTENT_SHA256", "").startswith("STREAMING-"):
        return True
    encodings = environ.get("HTTP_CONTENT_ENCODING", "").split(",")
    return "aws-chunked" in (encoding.strip() for encoding in encodings)


def _trailer_algorithm(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(trailer header name, algorithm) of the checksum the client says it sends last."""
    name = environ.get("HTTP_X_AMZ_TRAILER", "").strip().lower()
    if not name:
        return None
    algorithm = name.removeprefix("x-amz-checksum-").upper()
    if not name.startswith("x-amz-checksum-") or algorithm not in ALGORITHMS:
        raise BodyError(
            "InvalidRequest",
            f"x-amz-trailer names {name!r}; it must be x-amz-checksum-<algorithm> with "
            f"one of {', '.join(a.lower() for a in ALGORITHMS)}",
        )
    return name, algorithm


def missing_checksum(environ: dict[str, Any]) -> str | None:
    """The algorithm of ``x-amz-sdk-checksum-algorithm`` if the request carries no value
    for it (``x-amz-checksum-<algorithm>``): S3 computes that checksum from the body."""
    algorithm = environ.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM")
    if algorithm not in ALGORITHMS or environ.get(f"HTTP_X_AMZ_CHECKSUM_{algorithm}"):
        return None
    return algorithm


def _declared_length(environ: dict[str, Any]) -> int | None:
    text = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise BodyError(
            "InvalidArgument", f"x-amz-decoded-content-length must be a byte count, not {text!r}"
        )
    return value


def _check(check: Callable[..., None], *args: Any) -> None:
    """Run a chunk-signature check; a mismatch is S3's 403 SignatureDoesNotMatch."""
    try:
        check(*args)
    except chunksig.Mismatch as mismatch:
        raise BodyError("SignatureDoesNotMatch", str(mismatch), "403 Forbidden") from None


def _line(stream: IO[bytes], what: str) -> bytes:
    line = stream.readline(_MAX_LINE)
    if not line.endswith(b"\r\n"):
        raise _invalid(f"{what} does not end with CRLF where expected")
    return line[:-2]


def _chunk_size(header: bytes) -> int:
    text = header.split(b";", 1)[0].strip()
    try:
        return int(text, 16)
    except ValueError:
        raise _invalid(f"chunk size {text[:40]!r} is not hexadecimal") from None


def _trailers(stream: IO[bytes]) -> dict[str, str]:
    trailers: dict[str, str] = {}
    while True:
        line = stream.readline(_MAX_LINE)
        if line in (b"", b"\r\n"):  # the final CRLF (some clients leave it out)
            return trailers
        name, sep, value = line.decode("latin-1").strip().partition(":")
        if not sep:
            raise _invalid(f"trailer line {line[:40]!r} is not 'name:value'")
        trailers[name.strip().lower()] = value.strip()


def decode(stream: IO[bytes], environ: dict[str, Any], max_buffer_size: int) -> Decoded:
    """Decode the aws-chunked body in ``stream`` into a new buffer, checked against the
    request's ``x-amz-decoded-content-length`` and trailing checksum."""
    trailer = _trailer_algorithm(environ)
    declared = _declared_length(environ)
    algorithm = trailer[1] if trailer else missing_checksum(environ)
    running = running_checksum(algorithm) if algorithm else None
    seed = environ.get(chunksig.ENVIRON_KEY)
    chain = seed.chain() if seed is not None else None
    md5 = hashlib.md5(usedforsecurity=False)
    out = tempfile.SpooledTemporaryFile(max_buffer_size)  # noqa: SIM115 - returned open
    try:
        if declared is not None and declared > max_buffer_size:
            out.rollover()  # straight to the file, not through memory
        size = 0
        while True:
            header = _line(stream, "a chunk header")
            length = _chunk_size(header)
            # a signed upload's chunk is hashed for its signature as it is read
            signed = hashlib.sha256() if chain is not None else None
            remaining = length
            while remaining:
                data = stream.read(min(_CHUNK, remaining))
                if not data:
                    raise BodyError(
                        "IncompleteBody", f"The request body ended inside a chunk of {length} bytes"
                    )
                out.write(data)
                md5.update(data)
                if running is not None:
                    running.update(data)
                if signed is not None:
                    signed.update(data)
                remaining -= len(data)
            if chain is not None and signed is not None:
                _check(chain.chunk, chunksig.chunk_signature(header), signed.hexdigest())
            if not length:  # the final chunk, signed too: the trailers follow
                break
            size += length
            if stream.read(2) != b"\r\n":
                raise _invalid(f"a chunk of {length} bytes is not followed by CRLF")
        trailers = _trailers(stream)
        if chain is not None:
            _check(chain.trailers, trailers)
        if declared is not None and size != declared:
            raise BodyError(
                "IncompleteBody",
                f"You did not provide the number of bytes specified by the "
                f"x-amz-decoded-content-length header ({declared}; the body has {size})",
            )
        checksum = None
        if trailer is not None and running is not None:
            name, algorithm = trailer
            sent = trailers.get(name)
            if sent is None:
                raise _invalid(f"x-amz-trailer declares {name}, which the body does not end with")
            if sent != b64(running):
                raise BodyError(
                    "BadDigest",
                    f"The {algorithm} you specified did not match the calculated checksum.",
                )
            checksum = (algorithm, sent)
        elif algorithm and running is not None:  # asked for, not sent: S3 computes it
            checksum = (algorithm, b64(running))
        out.flush()
    except BaseException:
        out.close()
        raise
    return Decoded(out, size, md5.hexdigest(), checksum, trailers)


def plain_environ(environ: dict[str, Any], decoded: Decoded) -> dict[str, Any]:
    """The environ changes that show moto the request as an unframed one with an empty
    body (its key adopts ``decoded.buffer``) and the checksum in its header; apply them
    with :func:`apply` and undo them with what that returns."""
    import io

    encodings = [
        e.strip()
        for e in environ.get("HTTP_CONTENT_ENCODING", "").split(",")
        if e.strip() and e.strip() != "aws-chunked"
    ]
    changes: dict[str, Any] = {
        "wsgi.input": io.BytesIO(),
        "CONTENT_LENGTH": "0",
        "HTTP_X_AMZ_CONTENT_SHA256": "UNSIGNED-PAYLOAD",
        "HTTP_CONTENT_ENCODING": ",".join(encodings) or _MISSING,
        "HTTP_X_AMZ_DECODED_CONTENT_LENGTH": _MISSING,
        "HTTP_X_AMZ_TRAILER": _MISSING,
    }
    if decoded.checksum is not None:
        algorithm, value = decoded.checksum
        changes[f"HTTP_X_AMZ_CHECKSUM_{algorithm}"] = value
        # moto keeps the checksum of the algorithm this header names: the trailer's, which
        # S3 keeps whether or not the header came with it (or named the same algorithm)
        changes["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = algorithm
    return changes


def apply(environ: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (a value of ``_MISSING`` removes the key); return the undo."""
    undo = {key: environ.get(key, _MISSING) for key in changes}
    for key, value in changes.items():
        if value is _MISSING:
            environ.pop(key, None)
        else:
            environ[key] = value
    return undo
