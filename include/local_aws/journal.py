"""A write-ahead journal that makes moto's in-memory state survive a restart.

moto keeps its backends in process memory, and its models are private and change between
versions, so we do not serialise them. We record the requests that changed them instead:
every successful mutating HTTP request that reaches moto is appended to ``journal.log``
before the client sees the response, and at start :meth:`Journal.replay` re-sends the
records, in order, through a fresh moto app.

Layout of the journal directory::

    journal.log        records, each framed as magic | meta length | body length | crc32
                       | meta (JSON) | body; a torn or corrupt tail is detected and dropped
    blobs/<uuid>       request bodies larger than INLINE_LIMIT (S3 objects, parts)

Replay rebuilds moto's state only if moto does the same thing the second time; three
things see to that:

* S3 upload ids, which moto takes from os.urandom. The journal keeps the ids clients were
  first given; replay learns the ids moto gives the same requests now and translates in
  both directions, for replayed records and for live requests, so an upload begun before a
  restart can still be finished after it. (Version ids get the same treatment, in case the
  seed below does not reproduce them.)
* The clock and moto's random generator. A record keeps the readings moto took of its
  ``utcnow`` while applying it, and a seed for the ids it drew; replay feeds both back. So
  S3 LastModified, IAM CreateDate, role and policy ids, S3 version ids and log ingestion
  times come back exactly, metric data sent without a timestamp keeps the one moto gave it,
  and log events are not rejected as older than the 14 days moto accepts at replay time.
* Ordering. Mutations are applied and journaled under one lock, so the journal's order is
  the order moto applied them in.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import gzip
import io
import json
import logging
import os
import random
import re
import signal
import struct
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_input_stream

from local_aws import snapshot

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

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

#: Set to a step name of :meth:`Journal.compact` to kill the process there (tests of crash
#: safety): snapshot-written, log-written, log-renamed; ``<step>@<n>`` at this process's
#: n-th compaction (default: the first).
CRASH_AT_ENV = "LOCAL_AWS_JOURNAL_CRASH_AT"

_CHUNK = 1 << 20
_MAGIC = b"LAJ1"
_FRAME = struct.Struct(">4sIQI")  # magic, meta length, inline body length, crc32(meta+body)
_LOG_NAME = "journal.log"
_SNAPSHOT_PREFIX = "snapshot-"
_NEW = ".new"
_BLOB_DIR = "blobs"
_FORMAT = 1

_READ_ONLY_PREFIXES = (
    "Get",
    "Describe",
    "List",
    "Filter",
    "Head",
    "Query",
    "Test",
    "Search",
    "BatchGet",
    "Lookup",
    "Simulate",
    "Validate",
    "Check",
    "Estimate",
    "Preview",
    "Select",
    "Scan",
    "Decode",
)

# Unsigned JSON requests carry no credential scope; their target prefix names the service.
_TARGET_SERVICES = {
    "Logs_20140328": "logs",
    "GraniteServiceVersion20100801": "monitoring",
    "AnyScaleFrontendService": "application-autoscaling",
}

# Hop-by-hop or recomputed on replay; everything else is kept, since S3 stores headers
# such as Cache-Control or Content-Disposition and checksums must match the body.
_DROPPED_ENVIRON_KEYS = frozenset(
    {
        "HTTP_CONNECTION",
        "HTTP_KEEP_ALIVE",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_TE",
        "HTTP_EXPECT",
        "HTTP_UPGRADE",
        "HTTP_PROXY_CONNECTION",
        "HTTP_CONTENT_LENGTH",
    }
)
_PRESERVED_NAMES_KEY = "moto.preserved_header_names"  # moto.core.request, server mode

# Never on disk: the client's signature and session token. The credential scope stays, since
# replay routes by it (service, region; the access key id picks moto's account).
_SECRET_HEADERS = frozenset({"HTTP_X_AMZ_SECURITY_TOKEN"})
_SECRET_QUERY = frozenset({"X-Amz-Signature", "X-Amz-Security-Token", "Signature"})
_SIGNATURE = re.compile(r"Signature=[0-9a-fA-F]+")


def _without_secrets(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k not in _SECRET_HEADERS}
    if "HTTP_AUTHORIZATION" in kept:
        kept["HTTP_AUTHORIZATION"] = _SIGNATURE.sub(
            "Signature=redacted", kept["HTTP_AUTHORIZATION"]
        )
    return kept


def _query_without_secrets(query: str) -> str:
    if not any(name in query for name in _SECRET_QUERY):
        return query
    return "&".join(part for part in query.split("&") if part.split("=", 1)[0] not in _SECRET_QUERY)


_S3_ID_PARAM = re.compile(r"(?:^|(?<=&))(uploadId|versionId)=([^&]*)")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_CBOR_PATH = re.compile(r"^/service/[^/]+/operation/([^/]+)$")


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


class Journal:
    """Persist moto's state as a journal of the mutating requests it served.

    Use one per process and directory: ``replay(app)`` once, before serving, then serve
    ``wrap(app)``; ``close()`` when done. The directory is locked against a second writer.
    """

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

    # -- public API -------------------------------------------------------------------

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        """Return ``app`` behind a middleware that journals its successful mutations."""
        _install_shims()
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

    # -- the middleware ---------------------------------------------------------------

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
        try:
            with self._write_lock(_large_put(service, environ, body)) as write_lock:
                ts = time.time()
                with _recording() as applied:
                    response = _call(app, environ)
                write_lock.hold()
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
                            if body.blob is not None:
                                self._blobs.add(body.blob.name)
                                self._recent_blobs.append(body.blob.name)
                                body.blob = None  # the record owns it now
                            self._maybe_compact()
        finally:
            self._discard(body)
        return _buffered(response, start_response)

    @contextmanager
    def _write_lock(self, deferred: bool) -> Iterator[_WriteLock]:
        """The lock a mutation is applied and journaled under.

        A large PutObject takes it late: moto reads the body and copies it into its object
        without it (seconds for a gigabyte, which every other write waited for), and takes
        it the moment it first touches a bucket's keys; from then until the record is
        appended the lock is held, so the journal's order is still the order moto applied
        the changes in.
        """
        write_lock = _WriteLock(self._lock)
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

    # -- the log ----------------------------------------------------------------------

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
        # Only our own: a concurrent upload may be streaming a new blob right now.
        for name in self._blobs:
            (self.blob_dir / name).unlink(missing_ok=True)
        self._blobs.clear()
        self._to_live.clear()
        self._to_journal.clear()

    # -- compaction -------------------------------------------------------------------

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
            captured = snapshot.capture(
                self.services,
                {"to_live": dict(self._to_live), "to_journal": dict(self._to_journal)},
            )
            self._recent_blobs = []
            since_cut = self._since_snapshot
        name = f"{_SNAPSHOT_PREFIX}{uuid.uuid4().hex}"
        try:
            snapshot.write_bodies(captured, self.blob_dir, fsync=True)
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
        log.info(
            "journal: compacted %d records into a snapshot of %d bytes",
            since_cut,
            len(captured.data),
        )
        return True

    # -- replay -----------------------------------------------------------------------

    def _replay_one(self, app: WSGIApplication, meta: dict[str, Any], body: _Body) -> bool:
        if meta.get("v") != _FORMAT:
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


class _WriteLock:
    def __init__(self, lock: threading.Lock):
        self.lock = lock
        self.held = False

    def hold(self) -> None:
        if not self.held:
            self.lock.acquire()
            self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


def _hold_write_lock() -> None:
    """Take the journal's lock now, if this thread applies a large put that deferred it."""
    pending: _WriteLock | None = getattr(_applying, "write_lock", None)
    if pending is not None:
        pending.hold()


def _large_put(service: str, environ: WSGIEnvironment, body: _Body | None) -> bool:
    """A plain PutObject whose body went to a blob: the one write that takes the lock late."""
    return (
        service == "s3"
        and body is not None
        and body.blob is not None
        and environ.get("REQUEST_METHOD") == "PUT"
        and "HTTP_X_AMZ_COPY_SOURCE" not in environ
        and _query_keys(environ) <= {"x-id"}
        and _path(environ).strip("/").count("/") >= 1  # /bucket/key, not a bucket call
    )


class _Abandoned(Exception):
    """The journal was closed or reset while compacting."""


def _crash_point(step: str, compaction: int) -> None:
    wanted, _, number = os.environ.get(CRASH_AT_ENV, "").partition("@")
    if wanted == step and compaction == int(number or 1):
        log.warning("journal: %s=%s: killing this process", CRASH_AT_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)


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


# -- request inspection ---------------------------------------------------------------


def _path(environ: WSGIEnvironment) -> str:
    path = environ.get("PATH_INFO", "")
    return path.decode("latin-1") if isinstance(path, bytes) else str(path)


def _credential_scope_service(credential: str) -> str | None:
    parts = credential.split("/")
    return parts[3].lower() if len(parts) >= 5 else None


def _service(environ: WSGIEnvironment) -> str | None:
    """The service moto will route the request to, by the same clues moto uses."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    start = auth.find("Credential=")
    if start >= 0:
        service = _credential_scope_service(auth[start + 11 :].split(",", 1)[0].strip())
        if service:
            return service
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Credential=" in query:  # a presigned URL
        for key, value in parse_qsl(query):
            if key == "X-Amz-Credential":
                service = _credential_scope_service(value)
                if service:
                    return service
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return _TARGET_SERVICES.get(target.split(".", 1)[0], "unknown")
    return None


def _query_keys(environ: WSGIEnvironment) -> set[str]:
    return {k for k, _ in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)}


def _target_action(environ: WSGIEnvironment) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    match = _CBOR_PATH.match(_path(environ))  # smithy rpc-v2-cbor puts it in the path
    return match.group(1) if match else None


def _is_form(environ: WSGIEnvironment) -> bool:
    return str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded")


def _form_action(body: _Body, environ: WSGIEnvironment) -> str | None:
    if body.inline is None:
        return None
    data = body.inline
    if "gzip" in str(environ.get("HTTP_CONTENT_ENCODING", "")):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return None
    for key, value in parse_qsl(data.decode("utf-8", errors="replace")):
        if key == "Action":
            return value
    return None


def _query_action(environ: WSGIEnvironment) -> str | None:
    for key, value in parse_qsl(environ.get("QUERY_STRING", "")):
        if key == "Action":
            return value
    return None


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


def _rewrite_ids(query: str, mapping: dict[str, str]) -> str:
    def swap(match: re.Match[str]) -> str:
        value = unquote(match.group(2))
        return f"{match.group(1)}={quote(mapping.get(value, value), safe='')}"

    return _S3_ID_PARAM.sub(swap, query)


def _rewrite_copy_source(source: str, mapping: dict[str, str]) -> str:
    path, sep, query = source.partition("?")
    return path + sep + _rewrite_ids(query, mapping) if sep else source


def _s3_ids(meta: dict[str, Any], response: _Response) -> dict[str, str]:
    """The random ids moto gave this S3 request, which later requests may refer to."""
    ids: dict[str, str] = {}
    if meta["method"] == "POST" and "uploads" in {
        k for k, _ in parse_qsl(meta["query"], keep_blank_values=True)
    }:
        match = _UPLOAD_ID.search(response.body)
        if match:
            ids["upload_id"] = match.group(1).decode()
    version = response.header("x-amz-version-id")
    if version and version != "null":
        ids["version_id"] = version
    return ids


def _describe(meta: dict[str, Any]) -> str:
    target = meta.get("headers", {}).get("HTTP_X_AMZ_TARGET")
    what = target or f"{meta.get('path', '?')}?{meta.get('query', '')}".rstrip("?")
    return f"{meta.get('method', '?')} {meta.get('service', '?')} {what}"


# -- calling the app ------------------------------------------------------------------


def _call(app: WSGIApplication, environ: WSGIEnvironment) -> _Response:
    """Run ``app`` to completion; moto's responses are small unless they are reads."""
    captured: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return written.append

    result = app(environ, start_response)
    try:
        chunks = list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not captured:
        raise JournalError("the app returned without starting a response")
    return _Response(captured[0], list(captured[1]), b"".join(written + chunks))


def _buffered(response: _Response, start_response: StartResponse) -> list[bytes]:
    start_response(response.status, response.headers)
    return [response.body]


def _replay_environ(meta: dict[str, Any], body: _Body, to_live: dict[str, str]) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    headers: dict[str, str] = dict(meta["headers"])
    host = headers.get("HTTP_HOST", "localhost")
    query = _rewrite_ids(meta["query"], to_live) if to_live else meta["query"]
    if to_live and "HTTP_X_AMZ_COPY_SOURCE" in headers:
        headers["HTTP_X_AMZ_COPY_SOURCE"] = _rewrite_copy_source(
            headers["HTTP_X_AMZ_COPY_SOURCE"], to_live
        )
    environ = EnvironBuilder(
        method=meta["method"],
        base_url=f"http://{host}",
        input_stream=body.stream,
        content_length=body.size,
    ).get_environ()
    environ.pop("CONTENT_TYPE", None)
    environ.update(headers)
    environ["PATH_INFO"] = meta["path"]
    environ["QUERY_STRING"] = query
    raw_path = meta.get("raw_path")
    if raw_path:
        environ["RAW_URI"] = environ["REQUEST_URI"] = raw_path + (f"?{query}" if query else "")
    environ["CONTENT_LENGTH"] = str(body.size)
    environ[_PRESERVED_NAMES_KEY] = dict(meta.get("preserved", {}))
    return environ


@contextmanager
def fast_moto_routing() -> Iterator[None]:
    """Cache the list of moto's modules, which moto's server rebuilds from the file system
    (a listdir and ~170 stats) for every request it routes: over a third of replay time."""
    import moto.backends as backends

    real = backends.list_of_moto_modules
    cached = tuple(real())
    backends.list_of_moto_modules = lambda: cached
    try:
        yield
    finally:
        backends.list_of_moto_modules = real


# -- moto's clock and randomness ------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
#: Clock readings kept per record; past them, playback lets time run on from the last.
_MAX_READINGS = 256
_applying = threading.local()  # .clock and .random of the record this thread applies
_shim_lock = threading.Lock()
_real_utcnow: Callable[[], dt.datetime] | None = None
_shared_random: random.Random | None = None
_random_shim: random.Random | None = None


class _Recording:
    def __init__(self, real: Callable[[], dt.datetime], seed: int):
        self.real = real
        self.seed = seed
        self.readings: list[int] = []

    def now(self) -> dt.datetime:
        value = self.real()
        if len(self.readings) < _MAX_READINGS:
            self.readings.append((value - _EPOCH) // _MICROSECOND)
        return value


class _Playback:
    def __init__(self, readings: list[int], ts: float):
        self.readings = [_EPOCH + r * _MICROSECOND for r in readings]
        self.last = dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)
        self.index = 0
        self.since = time.monotonic()

    def now(self) -> dt.datetime:
        if self.index < len(self.readings):
            self.last = self.readings[self.index]
            self.index += 1
            self.since = time.monotonic()
            return self.last
        # Time still moves, so things made later by the request stay ordered after.
        return self.last + dt.timedelta(seconds=time.monotonic() - self.since)


def _shim_utcnow() -> dt.datetime:
    clock: _Recording | _Playback | None = getattr(_applying, "clock", None)
    if clock is not None:
        return clock.now()
    assert _real_utcnow is not None
    return _real_utcnow()


class _ThreadDraws(random.Random):
    """Draws from the applying thread's own generator, if it has one, else from ``shared``.

    Every other method of ``random.Random`` (and moto's MotoRandom: uuid4, choice, ...)
    is built on ``random()`` and ``getrandbits()``, so overriding those two suffices.
    """

    def __init__(self, shared: random.Random):
        super().__init__()
        self._shared = shared

    def _source(self) -> random.Random:
        own: random.Random | None = getattr(_applying, "random", None)
        return own if own is not None else self._shared

    def random(self) -> float:
        return self._source().random()

    def getrandbits(self, k: int, /) -> int:
        return self._source().getrandbits(k)

    def seed(self, *args: Any, **kwargs: Any) -> None:
        shared = getattr(self, "_shared", None)  # None while Random.__init__ runs
        if shared is None:
            super().seed(*args, **kwargs)
        else:  # moto-api/seed
            shared.seed(*args, **kwargs)


def _install_shims() -> None:
    """Route moto's clock and random generator through shims that can record or replay.

    Replay cannot bring back a time or an id moto made up, unless moto is made to make up
    the same ones: each record keeps the clock readings and a seed for the ids (role ids,
    S3 version ids, ...) moto drew while applying it, and replay feeds them back. moto's
    modules bind ``utcnow`` and ``mock_random`` by name at import, so every binding is
    swapped; modules imported later get the shims from where they import them. On a thread
    that is not applying a record, the shims are moto's own clock and generator.
    """
    global _real_utcnow, _shared_random, _random_shim
    import moto.core.utils as core_utils
    import moto.moto_api._internal as moto_api

    with _shim_lock:
        _guard_key_stores()
        if _real_utcnow is None:
            _real_utcnow = core_utils.utcnow
        if _shared_random is None:
            _shared_random = moto_api.mock_random
            # A subclass of moto's own class, for its helpers (uuid4, get_random_hex, ...).
            shim_type = type("JournalMotoRandom", (_ThreadDraws, type(_shared_random)), {})
            _random_shim = shim_type(_shared_random)
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "moto" or name.startswith("moto.")):
                continue
            for attr, value in list(vars(module).items()):
                if value is _real_utcnow:
                    setattr(module, attr, _shim_utcnow)
                elif value is _shared_random:
                    setattr(module, attr, _random_shim)


def _hash_before_locking(versions: Any) -> None:
    """The ETag of a new object, which moto hashes when it first answers with it: over the
    whole body, which is to be done before the lock, not under it."""
    pending: _WriteLock | None = getattr(_applying, "write_lock", None)
    if pending is None or pending.held or not isinstance(versions, list):
        return
    for version in versions:
        if getattr(version, "_etag", "") is None:
            try:
                version.etag  # noqa: B018  (computes and keeps it)
            except ValueError:  # a disposed version: nothing to hash
                pass


def _guard_key_stores() -> None:
    """Make a thread that deferred the journal's lock (a large put) take it at its first
    touch of an S3 bucket's keys, before it reads or changes them."""
    from moto.s3.utils import _VersionedKeyStore

    if getattr(_VersionedKeyStore, "_local_aws_guarded", False):
        return
    for name in ("__sgetitem__", "__setitem__", "setlist", "pop"):
        real = getattr(_VersionedKeyStore, name)

        def guarded(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            if _name == "setlist" and len(args) > 2:
                _hash_before_locking(args[2])
            _hold_write_lock()
            return _real(*args, **kwargs)

        setattr(_VersionedKeyStore, name, guarded)
    _VersionedKeyStore._local_aws_guarded = True  # type: ignore[attr-defined]


@contextmanager
def _recording() -> Iterator[_Recording]:
    assert _real_utcnow is not None and _shared_random is not None, "install the shims"
    # Drawn from moto's generator, so that seeding moto (moto-api/seed) still makes ids
    # reproducible from run to run.
    state = _Recording(_real_utcnow, _shared_random.getrandbits(64))
    _applying.clock, _applying.random = state, random.Random(state.seed)
    try:
        yield state
    finally:
        _applying.clock = _applying.random = None


@contextmanager
def _playback(meta: dict[str, Any]) -> Iterator[None]:
    seed = meta.get("seed")
    _applying.clock = _Playback(list(meta.get("clock", [])), float(meta["ts"]))
    _applying.random = random.Random(seed) if seed is not None else None
    try:
        yield
    finally:
        _applying.clock = _applying.random = None
