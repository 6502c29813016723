"""A log stream's events in a file of the data dir, not in moto's Python lists.

moto keeps every event of a stream as a ``LogEvent`` in ``LogStream.events`` (a job that
wrote 1 GB of log lines left 1.4 GB in the server), sorts the whole list for every
GetLogEvents page, and builds every matching event of the group for every
FilterLogEvents page. :class:`EventFile` keeps a stream's events on disk, sorted by
timestamp as moto sorts them (stably, in arrival order for equal timestamps), with a
sparse index in memory (one entry per :data:`BLOCK` events): a page is a seek and a
short read. :mod:`local_aws.logpatch` puts it under moto's ``LogStream``.

Durability is the journal's: it records PutLogEvents requests as before, and replay
writes a stream's file again from its CreateLogStream on. A snapshot pickles an
EventFile as its file's name, length and index; loading it cuts the file back to that
length (what was appended after the snapshot is replayed from the journal). So a file is
never shared by two streams (a fresh name per stream), and a stream's out-of-order batch
is merged into a new file rather than rewriting one a snapshot may refer to.
"""

from __future__ import annotations

import heapq
import itertools
import os
import struct
import threading
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Events per entry of the sparse index: a page read skips at most this many first.
BLOCK = 256
#: timestamp, ingestion time, event id, message length (UTF-8 bytes)
_HEADER = struct.Struct(">qqqI")
_READ_BUFFER = 1 << 16

# event ids, unique in the process (``aws logs tail`` dedups by them)
_ids_lock = threading.Lock()
_next_id = 0


def _new_ids(n: int) -> range:
    global _next_id
    with _ids_lock:
        first, _next_id = _next_id, _next_id + n
    return range(first, first + n)


def _seen_id(event_id: int) -> None:
    """Ids after a snapshot is loaded continue past the ones it holds."""
    global _next_id
    with _ids_lock:
        _next_id = max(_next_id, event_id + 1)


@dataclass(frozen=True)
class Event:
    timestamp: int
    ingestion_time: int
    event_id: int
    message: str

    def to_response_dict(self) -> dict[str, Any]:
        return {
            "ingestionTime": self.ingestion_time,
            "message": self.message,
            "timestamp": self.timestamp,
        }

    def to_filter_dict(self) -> dict[str, Any]:
        return {"eventId": str(self.event_id), **self.to_response_dict()}


def _encode(event: Event) -> bytes:
    data = event.message.encode("utf-8", "surrogatepass")
    return _HEADER.pack(event.timestamp, event.ingestion_time, event.event_id, len(data)) + data


def _encode_batch(events: list[Event], size: int, count: int) -> tuple[bytes, list[int], list[int]]:
    """Records of ``events`` appended after ``count`` events (``size`` bytes): the bytes,
    and the index entries (offsets, first timestamps) of the blocks they start."""
    data = bytearray()
    offsets, first_ts = [], []
    for event in events:
        if count % BLOCK == 0:
            offsets.append(size + len(data))
            first_ts.append(event.timestamp)
        data += _encode(event)
        count += 1
    return bytes(data), offsets, first_ts


def _copy_prefix(source: Any, out: Any, length: int) -> None:
    """The first ``length`` bytes of ``source`` to ``out`` (unbuffered files), in the
    kernel where it can."""
    done = 0
    while done < length:
        try:
            copied = os.copy_file_range(source.fileno(), out.fileno(), length - done)
        except (AttributeError, OSError):
            copied = 0
        if not copied:
            chunk = source.read(min(_READ_BUFFER, length - done))
            if not chunk:
                raise OSError(f"{source.name} ended at byte {done} of {length}")
            view = memoryview(chunk)
            while view:
                view = view[out.write(view) :]
            copied = len(chunk)
        done += copied


def _read_events(path: Path, offset: int, end: int) -> Iterator[Event]:
    """The events of ``path`` from byte ``offset`` (a record's start) to byte ``end``."""
    try:
        f = open(path, "rb", buffering=_READ_BUFFER)  # noqa: SIM115
    except FileNotFoundError:
        return  # its stream was deleted since the reader found it: it has no events now
    with f:
        f.seek(offset)
        while offset < end:
            header = f.read(_HEADER.size)
            timestamp, ingestion, event_id, size = _HEADER.unpack(header)
            message = f.read(size).decode("utf-8", "surrogatepass")
            offset += _HEADER.size + size
            yield Event(timestamp, ingestion, event_id, message)


@dataclass(frozen=True)
class _View:
    """What a reader sees: the file, and its first ``count`` events (``size`` bytes)."""

    path: Path
    count: int
    size: int
    offsets: array  # byte offset of event BLOCK*i
    first_ts: array  # timestamp of event BLOCK*i


class EventFile:
    """One stream's events, sorted by timestamp, in a file of ``directory``."""

    directory: Path | None = None  # set by logpatch.install

    def __init__(self) -> None:
        assert self.directory is not None, "local_aws.logpatch.install() sets the directory"
        self._lock = threading.Lock()
        self._path = self.directory / f"{uuid.uuid4().hex}.events"
        self._path.write_bytes(b"")
        self._count = self._size = 0
        self._offsets, self._first_ts = array("q"), array("q")
        self.last_ts: int | None = None
        self.max_id = -1

    # -- what moto's LogStream asks of its ``events`` ----------------------------------

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Event]:
        view = self._view()
        return _read_events(view.path, 0, view.size)

    @property
    def first_ts(self) -> int | None:
        return self._first_ts[0] if self._count else None

    @property
    def path(self) -> Path:
        return self._path

    # -- writes (moto's writes are serialised by the journal's lock) -------------------

    def append(self, events: list[dict[str, Any]], ingestion_time: int) -> list[Event]:
        """Add a batch (chronological, as PutLogEvents requires); return the new events."""
        new = [
            Event(int(e["timestamp"]), ingestion_time, event_id, e["message"])
            for e, event_id in zip(events, _new_ids(len(events)), strict=True)
        ]
        if not new:
            return new
        self.max_id = new[-1].event_id  # the largest yet: ids only grow
        if self.last_ts is not None and new[0].timestamp < self.last_ts:
            self._merge(new)
        else:
            self._write(new)
        return new

    def _write(self, events: list[Event]) -> None:
        data, offsets, first_ts = _encode_batch(events, self._size, self._count)
        with open(self._path, "ab") as f:
            f.write(data)
        with self._lock:  # readers see whole records only
            self._offsets.extend(offsets)
            self._first_ts.extend(first_ts)
            self._count, self._size = self._count + len(events), self._size + len(data)
            self.last_ts = events[-1].timestamp

    def _merge(self, events: list[Event]) -> None:
        """A batch older than the stream's newest event: merge into a new file (ties keep
        arrival order, as moto's stable sort does), which then replaces this one. The
        blocks before the first event the batch goes before are copied as bytes."""
        old = self._view()
        assert self.directory is not None
        kept_blocks = self._bound(old, events[0].timestamp, left=False) // BLOCK
        count, size = kept_blocks * BLOCK, old.offsets[kept_blocks]
        offsets, first_ts = old.offsets[:kept_blocks], old.first_ts[:kept_blocks]
        merged = heapq.merge(
            _read_events(old.path, size, old.size), events, key=lambda e: e.timestamp
        )
        path = self.directory / f"{uuid.uuid4().hex}.events"
        with open(old.path, "rb", buffering=0) as source, open(path, "wb", buffering=0) as out:
            _copy_prefix(source, out, size)
            for batch in iter(lambda: list(itertools.islice(merged, 10_000)), []):
                data, new_offsets, new_first_ts = _encode_batch(batch, size, count)
                view = memoryview(data)
                while view:  # an unbuffered write may take part of it
                    view = view[out.write(view) :]
                offsets.extend(new_offsets)
                first_ts.extend(new_first_ts)
                count, size = count + len(batch), size + len(data)
                last_ts = batch[-1].timestamp
        with self._lock:
            self._path, self._count, self._size = path, count, size
            self._offsets, self._first_ts, self.last_ts = offsets, first_ts, last_ts

    # -- reads --------------------------------------------------------------------------

    def _view(self) -> _View:
        with self._lock:
            return _View(self._path, self._count, self._size, self._offsets, self._first_ts)

    def index_range(self, start_time: int | None, end_time: int | None) -> tuple[int, int]:
        """[first, stop) of the events with start_time <= timestamp <= end_time (moto's
        filter: a missing or 0 bound is no bound)."""
        view = self._view()
        first = self._bound(view, start_time, left=True) if start_time else 0
        stop = self._bound(view, end_time, left=False) if end_time else view.count
        return first, max(first, stop)

    @staticmethod
    def _bound(view: _View, timestamp: int, left: bool) -> int:
        """Index of the first event with timestamp >= (left) or > (right) ``timestamp``."""
        find = bisect_left if left else bisect_right
        block = max(find(view.first_ts, timestamp, 0, len(view.first_ts)) - 1, 0)
        index = block * BLOCK
        stop = min(view.count, index + 2 * BLOCK)
        for event in EventFile._events(view, index, stop):
            if event.timestamp > timestamp or (left and event.timestamp == timestamp):
                return index
            index += 1
        return index

    def read(self, first: int, stop: int) -> Iterator[Event]:
        """Events ``first`` to ``stop`` (indexes in timestamp order)."""
        return self._events(self._view(), first, stop)

    @staticmethod
    def _events(view: _View, first: int, stop: int) -> Iterator[Event]:
        stop = min(stop, view.count)
        if first >= stop:
            return
        block = first // BLOCK
        index = block * BLOCK
        for event in _read_events(view.path, view.offsets[block], view.size):
            if index >= stop:
                return
            if index >= first:
                yield event
            index += 1

    # -- snapshots ----------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        view = self._view()
        with _files_lock:
            if _capturing is not None:  # fsynced by sync_captured, pinned till it is written
                _capturing.add(view.path.name)
        return {
            "name": view.path.name,
            "count": view.count,
            "size": view.size,
            "offsets": view.offsets[: -(-view.count // BLOCK)],
            "first_ts": view.first_ts[: -(-view.count // BLOCK)],
            "last_ts": self.last_ts if view.count else None,
            "max_id": self.max_id,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        assert self.directory is not None, "local_aws.logpatch.install() sets the directory"
        self._lock = threading.Lock()
        self._path = self.directory / state["name"]
        try:
            with open(self._path, "r+b") as f:  # what was appended after is replayed again
                if os.fstat(f.fileno()).st_size < state["size"]:
                    raise OSError(f"{self._path} is shorter than the snapshot says")
                f.truncate(state["size"])
        except OSError as exc:
            raise OSError(f"log events of a snapshot are missing: {exc}") from exc
        self._count, self._size = state["count"], state["size"]
        self._offsets, self._first_ts = state["offsets"], state["first_ts"]
        self.last_ts = state["last_ts"]
        self.max_id = state["max_id"]
        _seen_id(self.max_id)
        with _files_lock:
            _pinned.add(self._path.name)


# -- files no stream has any more ---------------------------------------------------------
#
# A deleted stream's file goes at once, unless a snapshot refers to it: the one on disk
# (a restart loads it, then replays the deletion), or one being written. Such a file is
# kept until a snapshot without it is in place. A crash in between leaves it to
# logpatch.collect_garbage at the next start.

_files_lock = threading.Lock()
#: names of the files that the snapshot on disk refers to
_pinned: set[str] = set()
#: names pickled into the snapshot being written (None: none is)
_capturing: set[str] | None = None
#: files no stream has, kept for a snapshot that refers to them
_retired: set[str] = set()


def pinned() -> set[str]:
    """Names of the files a snapshot on disk (or being written) refers to."""
    with _files_lock:
        return _pinned | (_capturing or set())


def retire(events: EventFile) -> None:
    """The file of a deleted stream: removed now, or once no snapshot refers to it."""
    name = events.path.name
    with _files_lock:
        if name in _pinned or (_capturing is not None and name in _capturing):
            _retired.add(name)
            return
    _remove([name])


def capture_started() -> None:
    """A snapshot is being pickled (the journal's lock held): note the files it refers to."""
    global _capturing
    with _files_lock:
        _capturing = set()


def sync_captured() -> None:
    """fsync the files the snapshot being written refers to, before it is made durable.

    Done without the journal's lock: what a snapshot refers to is the first ``size``
    bytes of each file, which appends do not change, and a file it refers to is not
    removed (pinned) even if its stream is deleted meanwhile."""
    directory = EventFile.directory
    with _files_lock:
        names = sorted(_capturing or ())
    for name in names:
        if directory is not None:
            with open(directory / name, "rb") as f:
                os.fsync(f.fileno())


def capture_ended(written: bool) -> None:
    """The snapshot is in place (``written``), or was given up: drop the files kept only
    for the snapshot that is no longer the one on disk."""
    global _capturing, _pinned
    with _files_lock:
        if written and _capturing is not None:
            _pinned = _capturing
        _capturing = None
        free = sorted(_retired - _pinned)
        _retired.difference_update(free)
    _remove(free)


def snapshot_dropped() -> None:
    """The snapshot on disk was deleted (moto-api/reset): it pins nothing any more."""
    global _pinned
    with _files_lock:
        _pinned = set()
        free = sorted(_retired - (_capturing or set()))
        _retired.difference_update(free)
    _remove(free)


def _remove(names: list[str]) -> None:
    directory = EventFile.directory
    if directory is None:
        return
    for name in names:
        (directory / name).unlink(missing_ok=True)
