"""Compaction: the live state snapshotted and the records before it dropped, online."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import time
import uuid
import zlib
from typing import IO, TYPE_CHECKING

from local_aws import logevents, snapshot
from local_aws.journal.records import (
    _FORMAT,
    _FRAME,
    _LOG_NAME,
    _MAGIC,
    _NEW,
    _SNAPSHOT_PREFIX,
    CRASH_AT_ENV,
    _copy_range,
    _fsync_dir,
)
from local_aws.journal.store import _LogStore

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class _Compaction(_LogStore):
    """Replaces the records with a snapshot of the state they built."""

    def _maybe_compact(self) -> None:
        """Start a compaction in the background if enough records piled up (lock held)."""
        if not self.compact_every or self._since_snapshot < self.compact_every:
            return
        if self._since_snapshot < self._retry_at:
            return
        if self._compacting is not None or self._closed.is_set():
            return
        self._compacting = threading.Thread(
            target=self._compact_in_background, name="journal-compaction", daemon=True
        )
        self._compacting.start()

    def _compact_in_background(self) -> None:
        try:
            self.compact()
        except Exception:
            log.exception("journal: compaction failed; the journal is left as it was")
            # not at every write from now on: after as many records again
            self._retry_at = self._since_snapshot + self.compact_every
        finally:
            self._compacting = None

    def compact(self) -> bool:
        """Replace the records with a snapshot of the state they built, online.

        Writes are paused only while moto's state is pickled and while the records that
        came in meanwhile are moved over. Crash-safe at every step: the new snapshot and
        log are written beside the old ones, fsynced, then renamed over them in one step
        (``journal.log``); until then the old pair is what a restart reads, after it the
        new one. Return whether it compacted (not if the journal closed or moto was reset
        meanwhile).
        """
        new_log = self.path / (_LOG_NAME + _NEW)
        with self._lock:
            if self._log is None:
                return False
            resets = self._resets
            cut = self._log.tell()
            logevents.capture_started()
            try:
                captured = snapshot.capture(
                    self.services,
                    {"to_live": dict(self._to_live), "to_journal": dict(self._to_journal)},
                )
            except BaseException:
                logevents.capture_ended(written=False)
                raise
            self._recent_blobs = []
            since_cut = self._since_snapshot
        name = f"{_SNAPSHOT_PREFIX}{uuid.uuid4().hex}"
        written = False
        try:
            snapshot.write_bodies(captured, self.blob_dir, fsync=True)
            logevents.sync_captured()
            tmp = self.path / (name + _NEW)
            with open(tmp, "wb") as f:
                f.write(captured.data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / name)
            _fsync_dir(self.path)
            _crash_point("snapshot-written", self.compactions + 1)
            marker = {
                "v": _FORMAT,
                "ts": time.time(),
                "service": "snapshot",
                "method": "LOAD",
                "path": name,
                "snapshot": name,
                "blobs": captured.blobs,
            }
            encoded = json.dumps(marker, separators=(",", ":")).encode()
            out: IO[bytes] = open(new_log, "wb")  # noqa: SIM115
            try:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                out.write(
                    _FRAME.pack(_MAGIC, len(encoded), 0, zlib.crc32(b"", zlib.crc32(encoded)))
                )
                out.write(encoded)
                # Most of what came in meanwhile is copied without pausing writes; the rest
                # (and the switch) with writes paused.
                copied = _copy_range(self.log_path, cut, out)
                with self._lock:
                    if self._log is None or self._resets != resets:
                        raise _Abandoned
                    self._log.flush()
                    _copy_range(self.log_path, cut + copied, out)
                    out.flush()
                    os.fsync(out.fileno())
                    _crash_point("log-written", self.compactions + 1)
                    os.replace(new_log, self.log_path)
                    _fsync_dir(self.path)
                    _crash_point("log-renamed", self.compactions + 1)
                    written = True
                    old_log, self._log = self._log, out
                    out = old_log  # closed below: releases the old file's flock
                    dropped = self._blobs - set(self._recent_blobs) - set(captured.blobs)
                    self._blobs = set(self._recent_blobs) | set(captured.blobs)
                    old_snapshot, self._snapshot = self._snapshot, name
                    self._since_snapshot -= since_cut
                    self._retry_at = 0
                    self.compactions += 1
                    # Removed with writes paused: a reset may not remove them twice.
                    for blob in dropped:
                        (self.blob_dir / blob).unlink(missing_ok=True)
                    if old_snapshot is not None:
                        (self.path / old_snapshot).unlink(missing_ok=True)
            finally:
                out.close()
        except _Abandoned:
            new_log.unlink(missing_ok=True)
            (self.path / name).unlink(missing_ok=True)
            return False
        except BaseException:
            new_log.unlink(missing_ok=True)
            (self.path / name).unlink(missing_ok=True)
            raise
        finally:
            captured.close()
            # the log-event files kept only for the snapshot replaced (or not written)
            logevents.capture_ended(written)
        log.info(
            "journal: compacted %d records into a snapshot of %d bytes",
            since_cut,
            len(captured.data),
        )
        return True


class _Abandoned(Exception):
    """The journal was closed or reset while compacting."""


def _crash_point(step: str, nth: int) -> None:
    wanted, _, number = os.environ.get(CRASH_AT_ENV, "").partition("@")
    if wanted == step and nth == int(number or 1):
        log.warning("journal: %s=%s: killing this process", CRASH_AT_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)
