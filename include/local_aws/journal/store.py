"""The journal's state and its log: appending records, scanning them back, resetting."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from local_aws import logevents
from local_aws.journal.inspection import _describe
from local_aws.journal.records import (
    _BLOB_DIR,
    _CHUNK,
    _FRAME,
    _LOG_NAME,
    _MAGIC,
    _NEW,
    _SNAPSHOT_PREFIX,
    COMPACT_EVERY,
    DEFAULT_SERVICES,
    FSYNC_INTERVAL,
    FSYNC_POLICIES,
    JournalError,
    _Body,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class _LogStore:
    """The journal's files, lock and counters; appends records, reads them back, makes
    them durable. The layers above (compaction, the write path, :class:`Journal`) share
    this state."""

    def __init__(
        self,
        path: Path,
        *,
        services: Collection[str] = DEFAULT_SERVICES,
        fsync: str = "interval",
        fsync_interval: float = FSYNC_INTERVAL,
        compact_every: int = COMPACT_EVERY,
    ):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if fsync_interval <= 0:
            raise ValueError(f"fsync_interval must be > 0 seconds, not {fsync_interval}")
        self.path = Path(path)
        self.services = frozenset(services)
        self.fsync = fsync == "always"
        self.compact_every = compact_every
        self.blob_dir = self.path / _BLOB_DIR
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.path / _LOG_NAME
        self._log: IO[bytes] | None = open(self.log_path, "ab")  # noqa: SIM115
        try:
            fcntl.flock(self._log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._log.close()
            raise JournalError(f"{self.path} is in use by another local_aws") from None
        # Held while moto applies a mutation and it is appended, so that the journal's
        # order is moto's order; reads are not serialised.
        self._lock = threading.Lock()
        self._scanned = False
        self._blobs: set[str] = set()  # blob files the journal refers to
        self._snapshot: str | None = None  # the snapshot file the log starts from
        self._since_snapshot = 0  # records after it
        self._recent_blobs: list[str] = []  # blobs of those records, while compacting
        self._compacting: threading.Thread | None = None
        self._retry_at = 0  # after a failed compaction, the record count to try again at
        self._resets = 0  # moto-api/reset calls, which void a compaction under way
        self.compactions = 0
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        self._unsynced: list[Path] = []  # blobs the flusher is to fsync
        self._unsynced_lock = threading.Lock()
        if fsync == "interval":
            self._flusher = threading.Thread(
                target=self._flush_every, args=(fsync_interval,), name="journal-fsync", daemon=True
            )
            self._flusher.start()
        # Ids as first given to clients (the journal's) <-> ids moto uses since the replay.
        self._to_live: dict[str, str] = {}
        self._to_journal: dict[str, str] = {}

    def _flush_every(self, interval: float) -> None:
        while not self._closed.wait(interval):
            if not self._dirty.is_set():
                continue
            # bodies first, so that a record made durable finds its body durable too
            with self._unsynced_lock:
                blobs, self._unsynced = self._unsynced, []
            for blob in blobs:
                try:
                    blob_fd = os.open(blob, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # its request failed, or it was compacted away
                try:
                    os.fsync(blob_fd)
                finally:
                    os.close(blob_fd)
            with self._lock:
                self._dirty.clear()
                if self._log is None:
                    return
                fd = os.dup(self._log.fileno())  # fsync outside the lock, on the same file
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _append(self, meta: dict[str, Any], body: _Body) -> None:
        if self._log is None:
            raise JournalError("journal is closed")
        if body.blob is not None:
            meta["blob"] = body.blob.name
            meta["blob_size"] = body.size
            inline = b""
        else:
            inline = body.inline or b""
        encoded = json.dumps(meta, separators=(",", ":")).encode()
        crc = zlib.crc32(inline, zlib.crc32(encoded))
        # One write per record: a crash leaves at worst one torn record, at the end.
        self._log.write(_FRAME.pack(_MAGIC, len(encoded), len(inline), crc) + encoded + inline)
        self._log.flush()
        self._since_snapshot += 1
        if self.fsync:
            os.fsync(self._log.fileno())
        else:
            self._dirty.set()

    def _scan(self) -> Iterator[tuple[dict[str, Any], _Body]]:
        """Yield the valid records, then cut off a torn or corrupt tail and orphan blobs."""
        if self._log is None:
            raise JournalError("journal is closed")
        blobs: set[str] = set()
        good_end = 0
        corrupt = False
        snapshot_name: str | None = None
        records = 0
        with open(self.log_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while True:
                frame = f.read(_FRAME.size)
                if not frame:
                    break
                if len(frame) < _FRAME.size:
                    # Torn while writing the frame header, unless it is not one at all.
                    corrupt = frame[:4] != _MAGIC[: len(frame)]
                    break
                magic, meta_len, body_len, crc = _FRAME.unpack(frame)
                if magic != _MAGIC:
                    corrupt = True
                    break
                if good_end + _FRAME.size + meta_len + body_len > size:
                    break  # torn while writing the record
                encoded = f.read(meta_len)
                inline = f.read(body_len)
                if zlib.crc32(inline, zlib.crc32(encoded)) != crc:
                    corrupt = good_end + _FRAME.size + meta_len + body_len < size
                    break
                good_end = f.tell()
                meta = json.loads(encoded)
                if "snapshot" in meta:
                    if records:
                        corrupt = True  # only ever the first record
                        good_end -= _FRAME.size + meta_len + body_len
                        break
                    snapshot_name = meta["snapshot"]
                    blobs.update(meta.get("blobs", []))
                    yield meta, _Body(size=0)
                    continue
                records += 1
                blob_name = meta.get("blob")
                if blob_name is None:
                    yield meta, _Body(size=len(inline), inline=inline, stream=io.BytesIO(inline))
                    continue
                blobs.add(blob_name)
                blob = self.blob_dir / blob_name
                try:
                    stream = open(blob, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    log.warning("journal: %s lost its body %s; skipped", _describe(meta), blob)
                    continue
                actual = os.fstat(stream.fileno()).st_size
                if actual != meta.get("blob_size"):
                    stream.close()
                    log.warning(
                        "journal: %s has a truncated body %s; skipped", _describe(meta), blob
                    )
                    continue
                yield meta, _Body(size=actual, stream=stream)
        if good_end < size:
            if corrupt:
                # Not just a torn write: keep the evidence rather than destroy it silently.
                saved = self.log_path.with_name(f"{_LOG_NAME}.corrupt-{int(time.time())}")
                with open(self.log_path, "rb") as f, open(saved, "wb") as out:
                    f.seek(good_end)
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                log.warning(
                    "journal: %s is corrupt after byte %d; moved the remaining %d bytes to %s",
                    self.log_path,
                    good_end,
                    size - good_end,
                    saved,
                )
            else:
                log.warning(
                    "journal: ignoring a torn last record (%d bytes) in %s",
                    size - good_end,
                    self.log_path,
                )
            # New records must follow the last good one, or the next replay stops short.
            self._log.truncate(good_end)
        if not corrupt:
            # Bodies whose request failed, or whose record was torn, in a crash; and what
            # a compaction cut short by a crash left behind.
            for orphan in self.blob_dir.iterdir():
                if orphan.name not in blobs:
                    orphan.unlink(missing_ok=True)
            for path in self.path.glob(f"{_SNAPSHOT_PREFIX}*"):
                if path.name != snapshot_name:
                    path.unlink(missing_ok=True)
            self.path.joinpath(_LOG_NAME + _NEW).unlink(missing_ok=True)
        self._blobs = blobs
        self._snapshot = snapshot_name
        self._since_snapshot = records
        self._scanned = True

    def _reset_log(self) -> None:
        """moto-api/reset emptied moto, so nothing journaled before it matters any more."""
        if self._log is None:
            raise JournalError("journal is closed")
        self._log.truncate(0)
        self._resets += 1
        self._since_snapshot = self._retry_at = 0
        if self._snapshot is not None:
            (self.path / self._snapshot).unlink(missing_ok=True)
            self._snapshot = None
            logevents.snapshot_dropped()
        # Only our own: a concurrent upload may be streaming a new blob right now.
        for name in self._blobs:
            (self.blob_dir / name).unlink(missing_ok=True)
        self._blobs.clear()
        self._to_live.clear()
        self._to_journal.clear()
