"""moto's Logs with each stream's events in an :class:`~local_aws.logevents.EventFile`.

Narrow patches of moto's ``LogStream`` (its ``events`` list becomes an EventFile, and
the methods that read or write it use the file's index) and of ``LogGroup.
filter_log_events`` (which built every matching event of the group for every page: it
now merges the streams lazily and resumes from its token by position). Answers are moto's
own: the same pages, order, tokens for GetLogEvents, and describe fields; FilterLogEvents
tokens carry the position of their event so that a page costs a seek, not a rescan.

The attributes patched are checked at import, so a moto that renames them fails loudly
here instead of silently keeping events in memory again.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moto.logs import models as logs_models
from moto.logs.exceptions import InvalidParameterException
from moto.logs.utils import EventMessageFilter

from local_aws import logevents, motopatch
from local_aws.logevents import EventFile

log = logging.getLogger(__name__)

_PATCHED = {
    logs_models.LogStream: ("__init__", "_update", "put_log_events", "get_log_events"),
    logs_models.LogGroup: ("filter_log_events", "delete_log_stream"),
    logs_models.LogsBackend: ("delete_log_group",),
}
for _owner, _names in _PATCHED.items():
    for _name in _names:
        motopatch.original(_owner, _name, "local_aws.logpatch (Logs events on disk)")
_original_init: Callable[..., None] = logs_models.LogStream.__init__
_original_delete_stream: Callable[..., None] = logs_models.LogGroup.delete_log_stream
_original_delete_group: Callable[..., None] = logs_models.LogsBackend.delete_log_group


@functools.wraps(_original_init)
def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.events = EventFile()


@functools.wraps(_original_delete_stream)
def _delete_log_stream(self: Any, log_stream_name: str) -> None:
    stream = self.streams.get(log_stream_name)
    _original_delete_stream(self, log_stream_name)
    if stream is not None:  # its events go with it (once no snapshot refers to them)
        logevents.retire(stream.events)


@functools.wraps(_original_delete_group)
def _delete_log_group(self: Any, log_group_name: str) -> None:
    group = self.groups.get(log_group_name)
    _original_delete_group(self, log_group_name)
    for stream in list(group.streams.values()) if group is not None else []:
        logevents.retire(stream.events)


def _update(self: Any) -> None:
    # moto takes the min and max of every event's timestamp; the file is sorted
    self.first_event_timestamp = self.events.first_ts
    self.last_event_timestamp = self.events.last_ts


def _put_log_events(self: Any, log_events: list[dict[str, Any]]) -> str:
    # moto's utcnow looked up at call time: the journal's clock shim replaces it
    self.last_ingestion_time = logs_models.utcnow()
    self.stored_bytes += sum(len(event["message"]) for event in log_events)
    ingestion_time = int(logs_models.unix_time_millis(self.last_ingestion_time))
    events = self.events.append(log_events, ingestion_time)
    self.upload_sequence_token += 1
    for subscription in self.log_group.subscription_filters.values():
        self._send_log_events(
            service=subscription.destination_arn.split(":")[2],
            destination_arn=subscription.destination_arn,
            filter_name=subscription.name,
            log_events=[
                {"id": e.event_id, "timestamp": e.timestamp, "message": e.message} for e in events
            ],
        )
    return f"{self.upload_sequence_token:056d}"


def _get_log_events(
    self: Any,
    start_time: int | None,
    end_time: int | None,
    limit: int | None,
    next_token: str | None,
    start_from_head: bool | None,
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """moto's paging (tokens are positions among the events in the time range)."""
    limit = 10000 if limit is None else limit
    direction, index = None, 0
    if next_token is not None:
        try:
            direction, index = next_token[0], int(next_token[2:])
        except (IndexError, ValueError):
            raise InvalidParameterException("The specified nextToken is invalid.") from None
    first, stop = self.events.index_range(start_time, end_time)
    final_index = stop - first - 1
    if direction is None:
        start_index = 0 if start_from_head else final_index - (limit - 1)
        end_index = start_index + limit - 1 if start_from_head else final_index
    elif direction == "f":
        start_index, end_index = index + 1, index + limit
    elif direction == "b":
        start_index, end_index = index - limit, index - 1
    else:
        raise InvalidParameterException("The specified nextToken is invalid.")
    if start_index < 0:
        start_index = 0
    elif start_index > final_index:
        return [], f"b/{final_index:056d}", f"f/{final_index:056d}"
    if end_index > final_index:
        end_index = final_index
    elif end_index < 0:
        return [], f"b/{0:056d}", f"f/{0:056d}"
    page = [
        event.to_response_dict()
        for event in self.events.read(first + start_index, first + end_index + 1)
    ]
    return page, f"b/{start_index:056d}", f"f/{end_index:056d}"


def _matching(
    stream: Any, position: int, first: int, stop: int, matcher: EventMessageFilter
) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """(timestamp, stream position, index, filter dict) of the stream's events ``first``
    to ``stop`` that match: ordered as moto's stable sort orders the group's events."""
    for index, event in enumerate(stream.events.read(first, stop), first):
        if matcher.matches(event.message):
            answer = event.to_filter_dict()
            answer["logStreamName"] = stream.log_stream_name
            yield event.timestamp, position, index, answer


def _resume_at(
    stream: Any, position: int, token: tuple[int, int, int] | None, first: int, interleaved: bool
) -> int:
    """Where the ``position``-th stream resumes after the event of ``token`` (stream
    position, timestamp, index), in moto's order: streams one after another, or merged by
    timestamp with ties in stream order."""
    if token is None:
        return first
    token_position, timestamp, index = token
    if position == token_position:
        return max(first, index + 1)
    if not interleaved:
        return first if position > token_position else stream.events.index_range(None, None)[1]
    # merged: the events of earlier streams with the same timestamp came before the token's
    after = stream.events.index_range(timestamp + (position < token_position), None)[0]
    return max(first, after)


def _parse_token(token: str, group: str, streams: list[Any]) -> tuple[int, int, int] | None:
    """(stream position, timestamp, index) of the event a FilterLogEvents token names."""
    try:
        token_group, stream_name, _event_id, timestamp, index = token.rsplit("@", 4)
        if token_group != group:
            return None
        names = [stream.log_stream_name for stream in streams]
        return names.index(stream_name), int(timestamp), int(index)
    except ValueError:
        return None


def _filter_log_events(
    self: Any,
    log_group_name: str,
    log_stream_names: list[str],
    start_time: int,
    end_time: int,
    limit: int | None,
    next_token: str | None,
    filter_pattern: str,
    interleaved: bool,
) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
    limit = limit or 10000
    streams = [
        stream
        for name, stream in self.streams.items()
        if not log_stream_names or name in log_stream_names
    ]
    searched = [
        {"logStreamName": stream.log_stream_name, "searchedCompletely": True} for stream in streams
    ]
    token = _parse_token(next_token, log_group_name, streams) if next_token else None
    if next_token and token is None:
        return [], None, searched  # moto (and AWS) answer an invalid token with nothing
    matcher = EventMessageFilter(filter_pattern)
    sources = []
    for position, stream in enumerate(streams):
        first, stop = stream.events.index_range(start_time, end_time)
        start = _resume_at(stream, position, token, first, interleaved)
        sources.append(_matching(stream, position, start, stop, matcher))
    merged = heapq.merge(*sources) if interleaved else itertools.chain(*sources)
    page = list(itertools.islice(merged, limit))
    more = next(merged, None) is not None
    next_token = None
    if page and more:
        timestamp, _position, index, event = page[-1]
        next_token = (
            f"{log_group_name}@{event['logStreamName']}@{event['eventId']}@{timestamp}@{index}"
        )
    return [event for *_key, event in page], next_token, searched


def install(directory: Path) -> None:
    """Keep log events in files of ``directory`` (process-wide, idempotent)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # job logs may hold secrets
    EventFile.directory = directory
    stream = logs_models.LogStream
    if stream.__dict__["__init__"] is _original_init:
        stream.__init__ = _init  # type: ignore[method-assign]
        stream._update = _update  # type: ignore[method-assign]
        stream.put_log_events = _put_log_events  # type: ignore[method-assign]
        stream.get_log_events = _get_log_events  # type: ignore[method-assign,assignment]
        logs_models.LogGroup.filter_log_events = _filter_log_events  # type: ignore[method-assign]
        logs_models.LogGroup.delete_log_stream = _delete_log_stream  # type: ignore[method-assign]
        logs_models.LogsBackend.delete_log_group = _delete_log_group  # type: ignore[method-assign]


def free_request_bodies() -> None:
    """Let each request's body go when the request ends, not at the next full GC.

    moto runs its Flask apps in debug mode, where Flask gives every request with a form
    body (a PutLogEvents of 1 MB, say) a class made for it that refers back to the request:
    a reference cycle, so the body stayed until Python's cyclic collector ran (a job
    writing its log pushed the server's RSS up by 100+ MB between collections). That class
    only words a KeyError of ``request.files`` better; moto reads no files.
    """
    from flask import debughelpers

    if not callable(getattr(debughelpers, "attach_enctype_error_multidict", None)):
        raise ImportError(
            "local_aws.logpatch: flask.debughelpers.attach_enctype_error_multidict is gone; "
            "check whether Flask's debug mode still ties request bodies into cycles"
        )
    debughelpers.attach_enctype_error_multidict = lambda request: None


def collect_garbage() -> int:
    """Remove the event files that no stream has (deleted streams, the files of the last
    run rewritten by its replay), keeping those of the snapshot loaded at start; return
    how many were removed. Call once the journal is replayed, before serving."""
    from moto.backends import get_backend

    directory = EventFile.directory
    if directory is None:
        return 0
    kept = logevents.pinned()
    backends: Any = get_backend("logs")
    for regions in backends.values():
        for backend in regions.values():
            for group in backend.groups.values():
                for stream in group.streams.values():
                    kept.add(stream.events.path.name)
    removed = 0
    for path in directory.glob("*.events"):
        if path.name not in kept:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d log event files no stream has", removed)
    return removed
