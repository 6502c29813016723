"""The journal's settings, its on-disk record format and the small file helpers around it."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Signing names of the services whose mutations are journaled. STS is left out on purpose:
#: its credentials are random and short-lived, so replaying them would only mint new ones.
DEFAULT_SERVICES = frozenset({"s3", "logs", "monitoring", "iam", "application-autoscaling"})

#: Bodies up to this size are kept inside the record; larger ones go to a blob file, so a
#: large upload is streamed to disk and never held in memory by the journal.
INLINE_LIMIT = 1 << 20

#: Records after which the journal is compacted: the live state is snapshotted and the
#: records before it dropped, so a restart replays at most this many records.
COMPACT_EVERY = 1000

#: How the journal reaches the disk. Every record is written to the OS before the client
#: hears back, so a crash of local_aws itself (kill -9 included) loses nothing; what fsync
#: adds is surviving a crash of the machine (power loss, kernel panic):
#: ``always`` fsyncs each record before answering (nothing acknowledged is lost);
#: ``interval`` fsyncs every FSYNC_INTERVAL seconds (the last interval's writes may be lost);
#: ``never`` leaves it to the OS (typically up to 30 s on Linux).
FSYNC_POLICIES = ("always", "interval", "never")
FSYNC_INTERVAL = 1.0

#: Set to a step name to kill the process there (tests of crash safety). Of
#: :meth:`Journal.compact`: snapshot-written, log-written, log-renamed; ``<step>@<n>`` at
#: this process's n-th compaction (default: the first). Of a late-locking write (a large
#: PutObject, CompleteMultipartUpload): applied (in moto, not journaled), journaled (not
#: answered), at any such write.
CRASH_AT_ENV = "LOCAL_AWS_JOURNAL_CRASH_AT"

_CHUNK = 1 << 20
_MAGIC = b"LAJ1"
_FRAME = struct.Struct(">4sIQI")  # magic, meta length, inline body length, crc32(meta+body)
_LOG_NAME = "journal.log"
_SNAPSHOT_PREFIX = "snapshot-"
_NEW = ".new"
_BLOB_DIR = "blobs"
_FORMAT = 1


class JournalError(RuntimeError):
    pass


@dataclass
class _Body:
    size: int
    inline: bytes | None = None
    blob: Path | None = None
    stream: IO[bytes] = field(default_factory=io.BytesIO)

    def close(self) -> None:
        self.stream.close()


@dataclass
class _Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(None, 1)[0])

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_range(path: Path, start: int, out: IO[bytes]) -> int:
    """Append ``path``'s bytes from ``start`` to its current end to ``out``; return how many."""
    copied = 0
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(_CHUNK):
            out.write(chunk)
            copied += len(chunk)
    return copied


def _read_up_to(stream: IO[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
