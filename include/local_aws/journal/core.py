"""The journal as its users see it: replay at start, then serve through its middleware."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from local_aws import snapshot
from local_aws.journal.calls import _call, _replay_environ, fast_moto_routing
from local_aws.journal.deferred import _guard_stores
from local_aws.journal.inspection import _describe, _s3_ids
from local_aws.journal.records import _FORMAT, JournalError, _Body
from local_aws.journal.shims import _install_shims, _playback
from local_aws.journal.write_path import _WritePath

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)


class Journal(_WritePath):
    """Persist moto's state as a journal of the mutating requests it served.

    Use one per process and directory: ``replay(app)`` once, before serving, then serve
    ``wrap(app)``; ``close()`` when done. The directory is locked against a second writer.
    """

    # -- public API -------------------------------------------------------------------

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        """Return ``app`` behind a middleware that journals its successful mutations."""
        _install_shims()
        _guard_stores()
        with self._lock:
            # Now, not at the first write: the scan drops unreferenced blobs, which must
            # not race with requests streaming new ones.
            if not self._scanned:
                for _meta, body in self._scan():
                    body.close()
            # A long journal (from before compaction, or with it off) is compacted now.
            self._maybe_compact()

        def journaled(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            return self._handle(app, environ, start_response)

        return journaled

    def replay(self, app: WSGIApplication) -> int:
        """Re-send every journaled request through ``app``; return how many succeeded.

        Call once, on a fresh moto, before serving. Records that fail now are logged and
        skipped.
        """
        with self._lock:
            if self._scanned:
                raise JournalError("replay() must run once, before the journal is served")
            _install_shims()
            done = failed = 0
            started = time.monotonic()
            with fast_moto_routing():
                for meta, body in self._scan():
                    try:
                        ok = self._replay_one(app, meta, body)
                    except JournalError:
                        raise
                    except Exception:
                        log.warning("journal: replaying %s failed", _describe(meta), exc_info=True)
                        ok = False
                    finally:
                        body.close()
                    done += ok
                    failed += not ok
            if failed:
                log.warning("journal: %d of %d records failed to replay", failed, done + failed)
            log.debug("journal: replayed %d records in %.2fs", done, time.monotonic() - started)
            return done

    def close(self) -> None:
        self._closed.set()
        compacting = self._compacting
        if compacting is not None:
            compacting.join()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            if self._log is not None:
                if self._dirty.is_set():
                    os.fsync(self._log.fileno())
                self._log.close()  # also releases the flock
                self._log = None

    # -- replay -----------------------------------------------------------------------

    def _replay_one(self, app: WSGIApplication, meta: dict[str, Any], body: _Body) -> bool:
        written = meta.get("v")
        if isinstance(written, int) and written > _FORMAT:
            # Skipping it would serve a state without it, and the next compaction would
            # drop it for good: refuse to start instead.
            raise JournalError(snapshot.newer_format(self.log_path, written, _FORMAT))
        if written != _FORMAT:
            log.warning(
                "journal: %s has unknown format %r; skipped", _describe(meta), meta.get("v")
            )
            return False
        if "snapshot" in meta:
            try:
                extra = snapshot.restore(self.path / meta["snapshot"], self.blob_dir)
            except (OSError, snapshot.SnapshotError) as exc:
                # The records before it are gone: going on would serve a partial state.
                raise JournalError(f"cannot load the journal's snapshot: {exc}") from exc
            self._to_live.update(extra.get("to_live", {}))
            self._to_journal.update(extra.get("to_journal", {}))
            return True
        environ = _replay_environ(meta, body, self._to_live)
        with _playback(meta):
            response = _call(app, environ)
        if response.code >= 300:
            log.warning(
                "journal: replaying %s now fails with %s: %s",
                _describe(meta),
                response.status,
                response.body[:300].decode(errors="replace"),
            )
            return False
        if meta.get("service") == "s3":
            for key, new in _s3_ids(meta, response).items():
                old = meta.get(key)
                if isinstance(old, str) and old != new:
                    self._to_live[old] = new
                    self._to_journal[new] = old
        return True
