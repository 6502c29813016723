"""A snapshot of moto's live state, so that the journal can forget the history behind it.

Replaying every request ever made costs time in proportion to the history (15 s for 5,000
puts, minutes for a churned bucket); a snapshot costs time in proportion to what is alive.
:class:`local_aws.journal.Journal` takes one now and then (compaction) and keeps only the
records written after it.

The snapshot is a pickle of the backends of the journaled services, taken while the
journal's write lock is held, so it is exactly the state the records before it built. The
pickle is tied to the moto version that wrote it (moto's models are private): a snapshot
from another version is refused with the version to install, never half-loaded.

Two things are not pickled as moto would:

* S3 objects larger than :data:`BODY_LIMIT` keep their bodies out of the pickle, in blob
  files beside the journal's own (the pickle would hold them in memory otherwise). An
  object's body never changes once written, so a blob is written once per object and
  reused by every later snapshot that still holds the object.
* moto's versioned key store is a ``dict`` whose ``items()`` gives the latest version
  only; pickled as a dict it would lose every older version.
"""

from __future__ import annotations

import copyreg
import gc
import io
import os
import pickle
import sys
import threading
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import Any

#: Bodies larger than this go to blob files rather than into the pickle.
BODY_LIMIT = 256 << 10
_CHUNK = 1 << 20
#: 2: small S3 objects pickled by :func:`_restore_small_key` (format 1, moto's own
#: ``__getstate__``, still loads).
_FORMAT = 2
_READABLE_FORMATS = (1, 2)

#: moto's backend names for the signing names the journal records.
BACKENDS = {
    "s3": "s3",
    "logs": "logs",
    "monitoring": "cloudwatch",
    "iam": "iam",
    "application-autoscaling": "applicationautoscaling",
}

# FakeKey -> name of the blob its body was written to by an earlier snapshot.
_written: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_written_lock = threading.Lock()


class SnapshotError(RuntimeError):
    pass


@dataclass
class Capture:
    """A snapshot in memory: the pickle, and the bodies still to be written to blobs."""

    data: bytes
    blobs: list[str]  # every blob the snapshot refers to
    # (name, fd, size, object) of the bodies still to copy
    pending: list[tuple[str, int, int, Any]] = field(default_factory=list)

    def close(self) -> None:
        for _name, fd, _size, _key in self.pending:
            os.close(fd)
        self.pending.clear()


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def _restore_versioned(cls: type, lists: list[tuple[str, list[Any]]]) -> Any:
    store = cls()
    for key, versions in lists:
        dict.__setitem__(store, key, versions)
    return store


# The blob dir of the snapshot being loaded (blob names in the pickle are relative to it).
_loading = threading.local()


def _restore_key(cls: Any, state: dict[str, Any], blob_name: str) -> Any:
    body: Path = _loading.blob_dir / blob_name
    key = cls.__new__(cls)
    key.__dict__.update(state)
    buffer = SpooledTemporaryFile(max_size=state["_max_buffer_size"])  # noqa: SIM115
    with open(body, "rb") as f:
        while chunk := f.read(_CHUNK):
            buffer.write(chunk)
    key._value_buffer = buffer
    key.lock = threading.Lock()
    with _written_lock:
        _written[key] = body.name
    return key


def _restore_small_key(cls: Any, state: dict[str, Any], value: bytes) -> Any:
    """moto's ``FakeKey.__setstate__`` without its per-key overhead (a dict comprehension
    and the value setter), which was most of a restart's time for many small objects."""
    key = cls.__new__(cls)
    key.__dict__.update(state)
    buffer = SpooledTemporaryFile(max_size=state["_max_buffer_size"])  # noqa: SIM115
    if value:
        buffer.write(value)
    key._value_buffer = buffer
    key.contentsize = len(value)  # as moto's: 0 for a disposed key's empty body
    key.lock = threading.Lock()
    return key


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        from moto.s3.models import FakeKey
        from moto.s3.utils import _VersionedKeyStore

        self.blobs: list[str] = []
        self.pending: list[tuple[str, int, int, Any]] = []
        # By type, not in reducer_override: that is called (in Python) for every object
        # pickled, dicts and strings too, seven calls per S3 object; the table is looked
        # up in C. The snapshot is taken with writes paused: this was a third of the pause.
        table: dict[type, Any] = dict(copyreg.dispatch_table)
        table[_VersionedKeyStore] = self._store
        for key_type in _with_subclasses(FakeKey):
            table[key_type] = self._key
        self.dispatch_table = table

    @staticmethod
    def _store(store: Any) -> Any:
        # dict.items: the versions lists as they are, without moto's per-key lookups
        return _restore_versioned, (type(store), [(k, list(v)) for k, v in dict.items(store)])

    def _key(self, key: Any) -> Any:
        # a disposed key (the parts of a completed upload stay referenced) has no body
        # left: kept empty, as moto's own pickling does
        if key.size > BODY_LIMIT and not key._value_buffer.closed:
            return self._key_by_blob(key)
        reduced = self._small_key(key)
        if reduced is NotImplemented:  # pickled as moto pickles it (format 1)
            return key.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        return reduced

    @staticmethod
    def _small_key(key: Any) -> Any:
        try:
            value = key.value
        except ValueError:  # disposed: its buffer is closed
            value = b""
        state = key.__dict__.copy()
        del state["_value_buffer"], state["lock"]
        return _restore_small_key, (type(key), state, value)

    def _key_by_blob(self, key: Any) -> Any:
        with _written_lock:
            name = _written.get(key)
        if name is None:
            name = f"snap-{uuid.uuid4().hex}"
            with key.lock:  # fileno() moves an in-memory body to a file first
                fd = os.dup(key._value_buffer.fileno())
            self.pending.append((name, fd, key.size, key))
        self.blobs.append(name)
        state = {k: v for k, v in key.__dict__.items() if k not in ("_value_buffer", "lock")}
        return _restore_key, (type(key), state, name)


def _with_subclasses(cls: type) -> list[type]:
    found = [cls]
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found.extend(_with_subclasses(sub))
    return found


def capture(services: Iterable[str], extra: dict[str, Any]) -> Capture:
    """Pickle the backends of ``services`` (signing names). Call with writes paused; cheap
    in time, since large bodies are only referenced (their fds duplicated) here."""
    from moto.backends import get_backend

    state = {}
    for service in services:
        name = BACKENDS.get(service)
        # A service moto has not served in this process has no state, and importing its
        # models can take seconds (application-autoscaling's pull in ECS and EC2): here,
        # with writes paused, and again at every restart when the snapshot is loaded.
        if name is None or f"moto.{name}" not in sys.modules:
            continue
        accounts = dict(get_backend(name))  # type: ignore[call-overload]
        if accounts:
            state[name] = accounts
    out = io.BytesIO()
    pickler = _Pickler(out)
    # What the capture makes (each object's state, the versions lists) are new containers
    # the cyclic collector would track and run over the whole heap for, again and again,
    # with writes paused; none of them is garbage before the capture ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # the header first, so that another moto's snapshot is refused before it is unpickled
        pickle.dump({"format": _FORMAT, "moto": _moto_version()}, out)
        pickler.dump({"backends": state, **extra})
    except BaseException:
        Capture(b"", [], pickler.pending).close()
        raise
    finally:
        if collecting:
            gc.enable()
    return Capture(out.getvalue(), sorted(set(pickler.blobs)), pickler.pending)


def write_bodies(capture: Capture, blob_dir: Path, fsync: bool) -> None:
    """Copy the bodies ``capture`` refers to into blob files (writes need not be paused:
    a body never changes, and the duplicated fd keeps a deleted object's file readable)."""
    try:
        for name, fd, size, key in capture.pending:
            path = blob_dir / name
            with open(path, "wb") as out:
                offset = 0
                while offset < size:
                    chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
                    if not chunk:
                        raise SnapshotError(f"an S3 body ended at {offset} of {size} bytes")
                    out.write(chunk)
                    offset += len(chunk)
                if fsync:
                    out.flush()
                    os.fsync(out.fileno())
            with _written_lock:  # later snapshots reuse it
                _written[key] = name
    finally:
        capture.close()


def newer_format(path: Path, written: int, readable: int) -> str:
    """The error for a file that a newer local_aws wrote, in a format this one cannot read."""
    return (
        f"{path} was written by a newer local_aws (format {written}); this one reads up to "
        f"format {readable}: upgrade local_aws, or start with another --data-dir"
    )


def restore(path: Path, blob_dir: Path) -> dict[str, Any]:
    """Load a snapshot into moto's (empty) backends; return its extra fields."""
    from moto.backends import get_backend
    from moto.core.base_backend import BackendDict

    with open(path, "rb") as f:
        header = pickle.load(f)
        written = header.get("format")
        if isinstance(written, int) and written > max(_READABLE_FORMATS):
            # its moto version says nothing useful then: this code cannot read it at all
            raise SnapshotError(newer_format(path, written, max(_READABLE_FORMATS)))
        if written not in _READABLE_FORMATS or header.get("moto") != _moto_version():
            raise SnapshotError(
                f"{path} was written by moto {header.get('moto')} (format "
                f"{header.get('format')}); this is moto {_moto_version()}: install "
                f"moto=={header.get('moto')} to load it"
            )
        _loading.blob_dir = blob_dir
        # Every object unpickled is a new container the cyclic collector tracks: left on,
        # it ran over the growing heap again and again (half of the load time for 20,000
        # objects). Nothing unpickled is garbage yet, so there is nothing for it to find.
        collecting = gc.isenabled()
        gc.disable()
        try:
            data = pickle.load(f)
        finally:
            _loading.blob_dir = None
            if collecting:
                gc.enable()
    for name, accounts in data.pop("backends").items():
        if not accounts:  # nothing to load: not worth importing its models
            continue
        backends: Any = get_backend(name)
        backends.update(accounts)
        registry: list[Any] = BackendDict._instances  # type: ignore[misc]
        if accounts and backends not in registry:  # so that a reset empties it too
            registry.append(backends)
    return data
