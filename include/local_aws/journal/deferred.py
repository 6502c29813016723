"""The writes that take the journal's lock late: a large PutObject, CompleteMultipartUpload.

Both spend their time before they change anything other writes see: copying a body of
gigabytes into its object, joining the parts into one file. Holding the lock for that
stopped every other write (a 1-byte put waited seconds behind a 1 GB upload, a 2 GB
completion stopped every write for its copy). So they run without the lock until moto first
changes an S3 bucket's keys or uploads; the lock is taken there and held until the record
is appended, so the journal's order is still the order moto applied the changes in.

What such a request read before that moment (whether the key exists and its versions, the
upload and its parts, whether the bucket is versioned) is noted as it is read, and checked
once the lock is held. If another write changed any of it meanwhile, the request has changed
nothing yet: it is run again from the start with the lock held, as every other write is. So
every answer is one that replaying the journal in its order gives again (a completion that
lost a race to an UploadPart of the same part fails with InvalidPart, as it would after it;
two concurrent puts of a versioned key both keep their version).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from local_aws.journal.shims import _applying

#: A check of one read: whether what it saw is still so.
_Check = Callable[[], bool]


class Stale(Exception):
    """What a late-locking request read was changed by another write before it took the lock."""


class _WriteLock:
    """The journal's lock as one request takes it: at once, or late (``deferred``)."""

    def __init__(self, lock: threading.Lock, deferred: bool = False):
        self.lock = lock
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
    from moto.s3.models import FakeBucket, MultipartDict
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
        for name in ("__contains__", "__sgetitem__"):
            _wrap(
                _VersionedKeyStore, name, lambda store, key, *_: _saw(_versions_check, store, key)
            )
        for name in ("__setitem__", "setlist", "pop"):
            _wrap(_VersionedKeyStore, name, _before_key_change)
        _wrap(MultipartDict, "__getitem__", lambda ups, key, *_: _saw(_upload_check, ups, key))
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


def _wrap(owner: type, name: str, before: Callable[..., None]) -> None:
    real = getattr(owner, name)

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self, *args)
        return real(self, *args, **kwargs)

    setattr(owner, name, guarded)
