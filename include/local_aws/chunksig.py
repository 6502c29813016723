"""The per-chunk signatures of a signed aws-chunked upload (``--verify-signatures``).

A client that signs its streaming upload (``x-amz-content-sha256:
STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, or ``...-PAYLOAD-TRAILER``: the AWS Java SDK and
Hadoop S3A over http) signs only the headers in the request's own signature (the *seed*),
and each chunk ``<hex size>;chunk-signature=<sig>\\r\\n<data>\\r\\n`` separately, chained::

    AWS4-HMAC-SHA256-PAYLOAD \\n <x-amz-date> \\n <scope> \\n <previous signature>
        \\n <sha256 of ''> \\n <sha256 of the chunk's data>

from the seed signature on, the final 0-byte chunk included, with the request's signing
key. With a trailer, the trailing headers are signed last (``x-amz-trailer-signature``)::

    AWS4-HMAC-SHA256-TRAILER \\n <x-amz-date> \\n <scope> \\n <final chunk's signature>
        \\n <sha256 of the trailing headers, sorted, each "name:value\\n">

(AWS's "Signature Calculations for the Authorization Header: Transferring Payload in
Multiple Chunks" and "... Including Trailing Headers"). :mod:`local_aws.sigv4` leaves a
:class:`Seed` in the environ of a request whose seed signature it checked;
:mod:`local_aws.s3chunked` checks every chunk against it as the body streams.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
#: Where a request's checked seed waits for its body (the environ of that request only:
#: a journal replay carries none, and its body was checked when it first came).
ENVIRON_KEY = "local_aws.chunk_seed"
TRAILER_SIGNATURE = "x-amz-trailer-signature"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: S3's words for a signature that does not match (SignatureDoesNotMatch).
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


class Mismatch(Exception):
    """A chunk or the trailer is not signed as the seed says: S3's SignatureDoesNotMatch."""


def chunk_string_to_sign(timestamp: str, scope: str, previous: str, data_sha256: str) -> str:
    return "\n".join(
        ["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, EMPTY_SHA256, data_sha256]
    )


def canonical_trailers(trailers: Mapping[str, str]) -> bytes:
    """The trailing headers as they are hashed for their signature (without it)."""
    lines = sorted(
        f"{name.strip().lower()}:{value.strip()}\n"
        for name, value in trailers.items()
        if name.strip().lower() != TRAILER_SIGNATURE
    )
    return "".join(lines).encode()


def trailer_string_to_sign(timestamp: str, scope: str, previous: str, trailers: bytes) -> str:
    return "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            timestamp,
            scope,
            previous,
            hashlib.sha256(trailers).hexdigest(),
        ]
    )


def chunk_signature(header: bytes) -> str | None:
    """The ``chunk-signature`` extension of a chunk header line, if it has one."""
    for extension in header.split(b";")[1:]:
        name, _, value = extension.partition(b"=")
        if name.strip() == b"chunk-signature":
            return value.strip().decode("latin-1")
    return None


@dataclass(frozen=True)
class Seed:
    """What a signed streaming request's chunks are checked with: ``sign`` signs a string
    with the request's signing key (botocore's signer, bound to the key and date)."""

    sign: Callable[[str], str]
    timestamp: str
    scope: str
    signature: str
    trailer: bool  # STREAMING-...-TRAILER: the trailing headers are signed too

    def chain(self) -> Chain:
        """A fresh chain for one pass over the body (a request run again starts over)."""
        return Chain(self)


class Chain:
    """The running check of one body's chunks, each signed after the one before it."""

    def __init__(self, seed: Seed):
        self.seed = seed
        self.previous = seed.signature

    def chunk(self, sent: str | None, data_sha256: str) -> None:
        seed = self.seed
        expected = seed.sign(
            chunk_string_to_sign(seed.timestamp, seed.scope, self.previous, data_sha256)
        )
        _compare(expected, sent)
        self.previous = expected

    def trailers(self, trailers: Mapping[str, str]) -> None:
        if not self.seed.trailer:
            return
        seed = self.seed
        expected = seed.sign(
            trailer_string_to_sign(
                seed.timestamp, seed.scope, self.previous, canonical_trailers(trailers)
            )
        )
        _compare(expected, trailers.get(TRAILER_SIGNATURE))


def _compare(expected: str, sent: str | None) -> None:
    if sent is None or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise Mismatch(MISMATCH)
