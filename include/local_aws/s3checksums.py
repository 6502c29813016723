"""S3's checksums computed in chunks, as a body streams, equal to moto's own.

moto computes a checksum (``moto.s3.utils.compute_checksum``) over a whole ``bytes``; the
streamed paths (:mod:`local_aws.s3join`, :mod:`local_aws.s3chunked`, :mod:`local_aws.s3stream`)
feed the same algorithms chunk by chunk. Checked against ``compute_checksum`` at import, so
a moto that changes its algorithms or fallbacks fails loudly here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Protocol

from moto.s3.utils import compute_checksum

#: The algorithms S3 (and moto) know, by the name in ``x-amz-checksum-<name>``.
ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


class Running(Protocol):
    def update(self, data: bytes) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """A CRC fed in chunks: ``function(data, previous)`` gives the running value."""

    def __init__(self, function: Callable[[bytes, int], int], width: int):
        self.function = function
        self.width = width
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = self.function(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self.width, "big")


def running_checksum(algorithm: str) -> Running:
    """What moto's ``compute_checksum(body, algorithm, encode_base64=False)`` gives, fed in
    chunks. The same libraries, and the same fallbacks to CRC32 when they are missing."""
    if algorithm == "SHA1":
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == "CRC32C":
        try:
            import crc32c

            return _Crc(crc32c.crc32c, 4)
        except ImportError:
            return _Crc(binascii.crc32, 4)
    if algorithm == "CRC32":
        return _Crc(binascii.crc32, 4)
    if algorithm == "CRC64NVME":
        from moto.s3 import utils as s3_utils

        if getattr(s3_utils, "HAS_CRT", False):
            from awscrt import checksums

            return _Crc(checksums.crc64nvme, 8)
        return _Crc(binascii.crc32, 4)
    return hashlib.sha256(usedforsecurity=False)


def _check_checksums() -> None:
    sample = bytes(range(256)) * 37
    for algorithm in ("SHA1", "SHA256", "CRC32", "CRC32C", "CRC64NVME"):
        running = running_checksum(algorithm)
        for start in range(0, len(sample), 1000):
            running.update(sample[start : start + 1000])
        if running.digest() != compute_checksum(sample, algorithm, encode_base64=False):
            raise ImportError(
                f"local_aws.s3checksums: {algorithm} computed in chunks differs from moto's "
                "compute_checksum; the streamed S3 checksums need revisiting"
            )


_check_checksums()


def b64(running: Running) -> str:
    """The checksum as S3 sends it in ``x-amz-checksum-*``: base64 of the digest."""
    return base64.b64encode(running.digest()).decode()
