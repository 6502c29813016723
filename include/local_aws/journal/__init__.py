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

The parts, each in its own module, each layer built on the one before:

    records      settings, the record format, JournalError
    inspection   what a request is (service, mutating or not, ids) and what of it is secret
    shims        moto's clock and random generator, recorded and played back; the write lock
    calls        calling moto's WSGI app, and rebuilding a journaled request for replay
    store        the log: append, scan (dropping a torn tail and orphan blobs), reset, fsync
    compaction   snapshot + truncate, online and crash-safe
    write_path   the middleware: which requests are journaled, under which lock
    core         :class:`Journal`: replay at start, then serve ``wrap(app)``
"""

from local_aws.journal.calls import fast_moto_routing
from local_aws.journal.core import Journal
from local_aws.journal.records import (
    COMPACT_EVERY,
    CRASH_AT_ENV,
    DEFAULT_SERVICES,
    FSYNC_INTERVAL,
    FSYNC_POLICIES,
    INLINE_LIMIT,
    JournalError,
)

__all__ = [
    "COMPACT_EVERY",
    "CRASH_AT_ENV",
    "DEFAULT_SERVICES",
    "FSYNC_INTERVAL",
    "FSYNC_POLICIES",
    "INLINE_LIMIT",
    "Journal",
    "JournalError",
    "fast_moto_routing",
]
