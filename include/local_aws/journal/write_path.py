"""The middleware's write path: which requests are journaled, and the lock they take."""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_input_stream

from local_aws.journal.calls import _buffered, _call
from local_aws.journal.compaction import _Compaction, _crash_point
from local_aws.journal.deferred import Stale, _WriteLock
from local_aws.journal.inspection import (
    _DROPPED_ENVIRON_KEYS,
    _PRESERVED_NAMES_KEY,
    _READ_ONLY_PREFIXES,
    _completion,
    _describe,
    _form_action,
    _is_form,
    _large_put,
    _part_upload,
    _path,
    _query_action,
    _query_keys,
    _query_without_secrets,
    _rewrite_copy_source,
    _rewrite_ids,
    _s3_ids,
    _service,
    _target_action,
    _without_secrets,
)
from local_aws.journal.records import _CHUNK, _FORMAT, INLINE_LIMIT, _Body, _read_up_to, _Response
from local_aws.journal.shims import _applying, _recording

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)


class _WritePath(_Compaction):
    """Journals each successful mutation, in the order moto applied them."""

    def _handle(
        self, app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = _path(environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path.startswith("/moto-api/"):
            if method == "POST" and path.rstrip("/") == "/moto-api/reset":
                return self._mutate(app, environ, start_response, "moto-api", None)
            return app(environ, start_response)
        service = _service(environ)
        body: _Body | None = None
        if service is None:  # unsigned: moto falls back to S3, bar a few query-protocol calls
            service = "s3"
            if _is_form(environ):
                try:
                    body = self._read_body(environ)
                except HTTPException as exc:
                    return exc(environ, start_response)
                if _form_action(body, environ) is not None:
                    # Such as STS AssumeRoleWithWebIdentity: never journaled.
                    self._forget_blob(body)
                    return app(environ, start_response)
        if service not in self.services:
            self._forget_blob(body)
            return app(environ, start_response)
        if service == "s3":
            self._translate_s3_ids(environ)
            if method in ("PUT", "POST", "DELETE") and "select" not in _query_keys(environ):
                return self._mutate(app, environ, start_response, service, body)
            self._forget_blob(body)
            return app(environ, start_response)

        action = _target_action(environ)
        if action is None and _is_form(environ):
            try:
                body = self._read_body(environ)
            except HTTPException as exc:
                return exc(environ, start_response)
            action = _form_action(body, environ)
        if action is None:
            action = _query_action(environ)
        if action is not None:
            mutating = not action.startswith(_READ_ONLY_PREFIXES)
        else:  # REST-style: the method says it
            mutating = method in ("PUT", "POST", "DELETE", "PATCH")
        if not mutating:
            self._forget_blob(body)
            return app(environ, start_response)
        return self._mutate(app, environ, start_response, service, body)

    def _mutate(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        service: str,
        body: _Body | None,
    ) -> Iterable[bytes]:
        # Captured before moto sees the environ: its headers as the client sent them.
        headers = {
            k: v
            for k, v in environ.items()
            if (k.startswith("HTTP_") or k == "CONTENT_TYPE")
            and k not in _DROPPED_ENVIRON_KEYS
            and isinstance(v, str)
        }
        headers = _without_secrets(headers)
        record_query = _query_without_secrets(
            environ.pop("local_aws.journal_query", environ.get("QUERY_STRING", ""))
        )
        if "HTTP_X_AMZ_COPY_SOURCE" in environ:
            headers["HTTP_X_AMZ_COPY_SOURCE"] = environ.pop(
                "local_aws.journal_copy_source", environ["HTTP_X_AMZ_COPY_SOURCE"]
            )
        try:
            if body is None:
                body = self._read_body(environ)
        except HTTPException as exc:
            return exc(environ, start_response)
        part = _part_upload(service, environ, body)
        deferred = part or _large_put(service, environ, body) or _completion(service, environ)
        # an UploadPart's own crash points: a test can kill it, not the parts before it
        step = "part-" if part else ""
        # as it was before moto saw it: to run it again if it turns out stale
        pristine = dict(environ) if deferred else environ
        try:
            with self._write_lock(deferred, part) as write_lock:
                ts = time.time()
                try:
                    with _recording() as applied:
                        response = _call(app, environ)
                except Exception as exc:
                    # Stale, or moto failing on what changed under it (a part disposed
                    # by an UploadPart of the same number while it was joined)
                    write_lock.hold()
                    if not write_lock.stale:
                        raise
                    if not isinstance(exc, Stale):
                        log.debug("journal: %s failed on a change made meanwhile", exc)
                write_lock.hold()
                if write_lock.stale:
                    # What it read changed before it took the lock, and it changed nothing
                    # yet: now it runs with the lock held from the start, as other writes do.
                    environ = dict(pristine)
                    body.stream.seek(0)
                    environ["wsgi.input"] = body.stream
                    ts = time.time()
                    with _recording() as applied:
                        response = _call(app, environ)
                if response.code < 300 and deferred:
                    _crash_point(step + "applied", 1)  # applied in memory, not journaled yet
                if response.code < 300:
                    meta: dict[str, Any] = {
                        "v": _FORMAT,
                        "ts": ts,
                        "clock": applied.readings,
                        "seed": applied.seed,
                        "service": service,
                        "method": environ.get("REQUEST_METHOD", "GET").upper(),
                        "path": environ.get("PATH_INFO", ""),
                        "query": record_query,
                        "headers": headers,
                    }
                    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
                    if isinstance(raw_uri, str):
                        meta["raw_path"] = raw_uri.split("?", 1)[0]
                    preserved = environ.get(_PRESERVED_NAMES_KEY)
                    if preserved:
                        meta["preserved"] = dict(preserved)
                    if service == "s3":
                        meta.update(_s3_ids(meta, response))
                    if service == "moto-api":
                        self._reset_log()
                    else:
                        try:
                            self._append(meta, body)
                        except Exception:
                            log.exception("journal: could not record %s", _describe(meta))
                            response = _Response(
                                "500 Internal Server Error",
                                [("Content-Type", "text/plain")],
                                b"local_aws applied the change but could not persist it\n",
                            )
                        else:
                            if deferred:
                                _crash_point(step + "journaled", 1)  # journaled, not answered
                            if body.blob is not None:
                                self._blobs.add(body.blob.name)
                                self._recent_blobs.append(body.blob.name)
                                body.blob = None  # the record owns it now
                            self._maybe_compact()
        finally:
            self._discard(body)
        return _buffered(response, start_response)

    @contextmanager
    def _write_lock(self, deferred: bool, part: bool = False) -> Iterator[_WriteLock]:
        """The lock a mutation is applied and journaled under.

        A large PutObject or UploadPart (``part``) or a CompleteMultipartUpload takes it late
        (``deferred``): at its first change of what other writes see, after the copy or
        join that takes seconds for a gigabyte (see :mod:`local_aws.journal.deferred`); from
        then until the record is appended the lock is held, so the journal's order is still
        the order moto applied the changes in.
        """
        write_lock = _WriteLock(self._lock, deferred, part)
        if not deferred:
            write_lock.hold()
        else:
            _applying.write_lock = write_lock
        try:
            yield write_lock
        finally:
            _applying.write_lock = None
            write_lock.release()

    def _translate_s3_ids(self, environ: WSGIEnvironment) -> None:
        """Let clients use both pre-restart (journal) ids and ids moto gave out since."""
        if not self._to_live:
            return
        query = environ.get("QUERY_STRING", "")
        if "Id=" in query:
            environ["local_aws.journal_query"] = _rewrite_ids(query, self._to_journal)
            live = _rewrite_ids(query, self._to_live)
            if live != query:
                environ["QUERY_STRING"] = live
                for key in ("RAW_URI", "REQUEST_URI"):
                    raw = environ.get(key)
                    if isinstance(raw, str):
                        environ[key] = raw.split("?", 1)[0] + "?" + live
        source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        if isinstance(source, str) and "versionId=" in source:
            environ["local_aws.journal_copy_source"] = _rewrite_copy_source(
                source, self._to_journal
            )
            environ["HTTP_X_AMZ_COPY_SOURCE"] = _rewrite_copy_source(source, self._to_live)

    # -- bodies -----------------------------------------------------------------------

    def _read_body(self, environ: WSGIEnvironment) -> _Body:
        """Read the request body once: into memory if small, else streamed to a blob file.

        The environ is left with a fresh stream over it, as if nothing had been read.
        """
        stream = get_input_stream(environ)
        head = _read_up_to(stream, INLINE_LIMIT + 1)
        if len(head) <= INLINE_LIMIT:
            body = _Body(size=len(head), inline=head, stream=io.BytesIO(head))
        else:
            blob = self.blob_dir / uuid.uuid4().hex
            size = len(head)
            try:
                with open(blob, "wb") as out:
                    out.write(head)
                    del head
                    while chunk := stream.read(_CHUNK):
                        out.write(chunk)
                        size += len(chunk)
                    if self.fsync:
                        out.flush()
                        os.fsync(out.fileno())
                if self._flusher is not None:
                    with self._unsynced_lock:
                        self._unsynced.append(blob)
            except BaseException:
                blob.unlink(missing_ok=True)
                raise
            body = _Body(size=size, blob=blob, stream=open(blob, "rb"))  # noqa: SIM115
        environ["wsgi.input"] = body.stream
        environ["CONTENT_LENGTH"] = str(body.size)
        # The body is now a plain stream of known length, however it arrived. It ends where
        # the body ends, so it is marked terminated: werkzeug then reads a large body with
        # one read of the file instead of through a LimitedStream, whose read-to-the-end
        # collects 8 KiB pieces and joins them (twice the body in memory at the peak, and
        # the pieces' memory kept by the allocator afterwards: 1 GB resident after a 1 GB put).
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = True
        return body

    @staticmethod
    def _forget_blob(body: _Body | None) -> None:
        """For a body read but not to be journaled; moto reads it later, from the stream."""
        if body is not None and body.blob is not None:
            body.blob.unlink()  # the open stream outlives the name
            body.blob = None

    @staticmethod
    def _discard(body: _Body | None) -> None:
        if body is None:
            return
        body.close()
        if body.blob is not None:
            body.blob.unlink(missing_ok=True)
