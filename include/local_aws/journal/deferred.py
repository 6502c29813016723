"""The writes that take the journal's lock late: a large PutObject, a large UploadPart,
CompleteMultipartUpload.

All three spend their time before they change anything other writes see: copying a body of
gigabytes into its object or part, joining the parts into one file. Holding the lock for
that stopped every other write (a 1-byte put waited seconds behind a 1 GB upload, a 2 GB
completion stopped every write for its copy, a multipart upload of 256 MB parts stopped them
for each part's copy). So they run without the lock until moto first changes an S3 bucket's
keys or uploads, or stores a part in its upload; the lock is taken there and held until the
record is appended, so the journal's order is still the order moto applied the changes in.

What such a request read before that moment (that the bucket is the same bucket, whether the
key exists and its versions, the upload and its parts, whether the bucket is versioned) is
noted as it is read, and checked once the lock is held. If another write changed any of it
meanwhile, the request has changed nothing yet: it is run again from the start with the lock
held, as every other write is. So every answer is one that replaying the journal in its
order gives again (a completion that lost a race to an UploadPart of the same part fails
with InvalidPart, as it would after it; two concurrent puts of a versioned key both keep
their version; a put or a part whose bucket was deleted meanwhile fails NoSuchBucket).

An UploadPart notes less: only that its upload is the same upload (not aborted, completed,
or gone with its bucket). The other parts of the upload, and a part of its own number stored
meanwhile, are not read by it: moto stores the part whatever they are, replacing (and
disposing) a part of that number found once the lock is held, as a replay in the journal's
order does. So the parts of one upload sent at once (boto3 sends them so) do not make each
other run again. Its part's key is built (the body copied) on a stand-in of the upload that
nobody else sees; :func:`_late_set_part` then stores it with the lock held.
"""

from __future__ import annotations

import copy
import functools
import threading
from bisect import insort
from collections.abc import Callable
from typing import Any

from local_aws.journal.compaction import _crash_point
from local_aws.journal.shims import _applying

#: A check of one read: whether what it saw is still so.
_Check = Callable[[], bool]


class Stale(Exception):
    """What a late-locking request read was changed by another write before it took the lock."""


class _WriteLock:
    """The journal's lock as one request takes it: at once, or late (``deferred``)."""

    def __init__(self, lock: threading.Lock, deferred: bool = False, part: bool = False):
        self.lock = lock
        #: an UploadPart: of its upload, only that it is the same upload is noted
        self.part = part
        self.held = False
        self.reads: list[_Check] | None = [] if deferred else None
        self.stale = False

    def hold(self) -> None:
        if self.held:
            return
        self.lock.acquire()
        self.held = True
        if self.reads:
            self.stale = not all(still() for still in self.reads)
        self.reads = None

    def release(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


def _pending() -> _WriteLock | None:
    """This thread's late-locking request, while it does not hold the lock yet."""
    pending: _WriteLock | None = getattr(_applying, "write_lock", None)
    return pending if pending is not None and not pending.held else None


def _saw(check: Callable[..., _Check], *args: Any) -> None:
    """Note a read by a late-locking request: ``check(*args)`` gives its check, taken
    before the read (a change in between makes it stale: run again, never wrongly kept)."""
    pending = _pending()
    if pending is not None and pending.reads is not None:
        pending.reads.append(check(*args))


def _before_change() -> None:
    """Take the lock before moto changes what other writes see; give up if it is stale."""
    pending = _pending()
    if pending is None:
        return
    pending.hold()
    if pending.stale:
        raise Stale("what the request read changed before it took the journal's lock")


def _same(current: Any, seen: tuple[Any, ...] | None) -> bool:
    """Whether a list (or None) holds the same objects as ``seen`` did."""
    if current is None or seen is None:
        return current is seen
    return len(current) == len(seen) and all(a is b for a, b in zip(current, seen, strict=True))


def _versions_check(store: dict[str, Any], key: str) -> _Check:
    versions = dict.get(store, key)
    seen = None if versions is None else tuple(versions)
    return lambda: _same(dict.get(store, key), seen)


def _saw_upload(uploads: dict[str, Any], upload_id: str, *_: Any) -> None:
    pending = _pending()
    if pending is not None:
        _saw(_same_upload_check if pending.part else _upload_check, uploads, upload_id)


def _same_upload_check(uploads: dict[str, Any], upload_id: str) -> _Check:
    upload = dict.get(uploads, upload_id)
    return lambda: dict.get(uploads, upload_id) is upload


def _bucket_check(buckets: dict[str, Any], name: str) -> _Check:
    # a bucket deleted (and perhaps made again) meanwhile: what the request holds of it
    # is gone, and a replay would answer NoSuchBucket
    bucket = dict.get(buckets, name)
    return lambda: dict.get(buckets, name) is bucket


def _upload_check(uploads: dict[str, Any], upload_id: str) -> _Check:
    upload = dict.get(uploads, upload_id)
    numbers = None if upload is None else tuple(upload.parts)
    parts = None if upload is None else tuple(upload.parts.values())

    def still() -> bool:
        now = dict.get(uploads, upload_id)
        if now is not upload or now is None:
            return now is upload
        return tuple(now.parts) == numbers and _same(tuple(now.parts.values()), parts)

    return still


def _versioning_check(bucket: Any) -> _Check:
    status = bucket.versioning_status
    return lambda: bucket.versioning_status == status


def _hash_before_locking(versions: Any) -> None:
    """The ETag of a new object, which moto hashes when it first answers with it: over the
    whole body, which is to be done before the lock, not under it."""
    if _pending() is None or not isinstance(versions, list):
        return
    for version in versions:
        if getattr(version, "_etag", "") is None:
            try:
                version.etag  # noqa: B018  (computes and keeps it)
            except ValueError:  # a disposed version: nothing to hash
                pass


_guard_lock = threading.Lock()


def _guard_stores() -> None:
    """Make moto's S3 key stores, upload tables and versioning note the reads of a
    late-locking request, and take the lock at its first change (process-wide, once)."""
    from moto.s3.models import FakeBucket, FakeMultipart, MultipartDict, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    with _guard_lock:
        if getattr(_VersionedKeyStore, "_local_aws_guarded", False):
            return
        versioned = FakeBucket.__dict__.get("is_versioned")
        if not isinstance(versioned, property) or versioned.fget is None:
            raise ImportError(
                "local_aws.journal: moto's FakeBucket.is_versioned is no longer a property; "
                "the late lock of large writes needs revisiting for this moto version"
            )
        stored = set(FakeMultipart.set_part.__code__.co_names)
        if not {"FakeKey", "dispose", "parts", "partlist", "insort"} <= stored:
            raise ImportError(
                "local_aws.journal: moto's FakeMultipart.set_part no longer builds a FakeKey "
                "and stores it in parts/partlist; the late lock of UploadPart needs revisiting"
            )
        for name in ("__contains__", "__sgetitem__"):
            _wrap(
                _VersionedKeyStore, name, lambda store, key, *_: _saw(_versions_check, store, key)
            )
        for name in ("__setitem__", "setlist", "pop"):
            _wrap(_VersionedKeyStore, name, _before_key_change)
        _wrap(MultipartDict, "__getitem__", _saw_upload)
        _wrap(
            S3Backend,
            "get_bucket",
            lambda backend, name, *_: _saw(_bucket_check, backend.buckets, name),
        )
        FakeMultipart.set_part = _late_set_part(FakeMultipart.set_part)  # type: ignore[method-assign]
        for name in ("__setitem__", "__delitem__"):
            _wrap(MultipartDict, name, lambda *_: _before_change())
        versioning = versioned.fget

        def is_versioned(bucket: Any) -> bool:
            _saw(_versioning_check, bucket)
            return bool(versioning(bucket))

        FakeBucket.is_versioned = property(is_versioned)  # type: ignore[method-assign,assignment]
        _VersionedKeyStore._local_aws_guarded = True  # type: ignore[attr-defined]


def _before_key_change(store: Any, key: Any, *args: Any) -> None:
    if args:  # setlist(key, versions): hash the new version's body before the lock
        _hash_before_locking(args[0])
    try:
        _before_change()
    except Stale:
        # the new version is dropped: close its file now (moto warns of a key never disposed)
        stored = dict.get(store, key) or []
        for version in args[0] if args and isinstance(args[0], list) else []:
            if all(version is not kept for kept in stored) and hasattr(version, "dispose"):
                version.dispose()
        raise


def _late_set_part(real: Callable[..., Any]) -> Callable[..., Any]:
    """moto's ``FakeMultipart.set_part``, which builds the part's key (copying the body into
    it) and stores it in the upload in one call: for a late-locking UploadPart, the key is
    built first, without the lock, and the lock taken to store it."""

    @functools.wraps(real)
    def set_part(upload: Any, part_id: int, value: Any) -> Any:
        if _pending() is None or part_id < 1:  # the lock is held already, or moto's error
            return real(upload, part_id, value)
        # moto's own set_part, on a stand-in of the upload with no parts that nobody else
        # sees: the key is made as moto makes it (the upload's encryption), body copied
        stand_in = copy.copy(upload)
        stand_in.parts, stand_in.partlist = {}, []
        key = real(stand_in, part_id, value)
        key.etag  # noqa: B018  (an MD5 over the body, if the copy did not keep one)
        _crash_point("part-copied", 1)  # copied, nothing stored yet
        try:
            _before_change()
        except Stale:
            key.dispose()  # dropped: the request runs again with the lock held
            raise
        # stored as moto's set_part stores it, now with the lock held
        if part_id in upload.parts:
            upload.parts[part_id].dispose()
        upload.parts[part_id] = key
        if part_id not in upload.partlist:
            insort(upload.partlist, part_id)
        return key

    return set_part


def _wrap(owner: type, name: str, before: Callable[..., None]) -> None:
    real = getattr(owner, name)

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self, *args)
        return real(self, *args, **kwargs)

    setattr(owner, name, guarded)
