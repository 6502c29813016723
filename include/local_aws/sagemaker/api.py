"""The operation registry: each resource module registers its SageMaker operations here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from local_aws.sagemaker.errors import AWSError, ValidationException

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

Handler = Callable[["Backend", dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        OPERATIONS[name] = fn
        return fn

    return register


def now() -> float:
    return time.time()


def shape_response(operation_name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Keep only the members the real response has (records also hold private state)."""
    from local_aws.sagemaker.service_model import output_members

    members = output_members(operation_name)
    return {k: v for k, v in record.items() if k in members and v is not None}


def create_record(
    backend: Backend, kind: str, key: str, record: dict[str, Any], *, arn: str, exists: AWSError
) -> None:
    """Store a new resource's record, its ``Tags`` under ``arn`` in the tag store; a key
    already taken raises ``exists`` (SageMaker's wording differs per resource, and clients
    match on it)."""
    with backend.store.lock:  # check-then-create as one step
        if backend.store.exists(kind, key):
            raise exists
        backend.store.create(kind, key, {k: v for k, v in record.items() if k != "Tags"})
    backend.tags.add(arn, record.get("Tags", []))


def pick(record: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The record's members among ``keys`` that have a value (e.g. a List* call's summary)."""
    return {k: record[k] for k in keys if record.get(k) is not None}


def list_page(
    records: Iterable[dict[str, Any]],
    params: dict[str, Any],
    *,
    name_key: str,
    status_key: str | None = None,
    summary: Callable[[dict[str, Any]], dict[str, Any]],
    result_key: str,
    default_sort: str = "CreationTime",
    extra_filter: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The List* calls' shared filters, sort and pagination (NextToken is an offset)."""
    items = list(records)
    contains = params.get("NameContains")
    if contains:
        items = [r for r in items if contains.lower() in r[name_key].lower()]
    if status_key and params.get("StatusEquals"):
        items = [r for r in items if r.get(status_key) == params["StatusEquals"]]
    for field, key, op in (
        ("CreationTimeAfter", "CreationTime", "gt"),
        ("CreationTimeBefore", "CreationTime", "lt"),
        ("LastModifiedTimeAfter", "LastModifiedTime", "gt"),
        ("LastModifiedTimeBefore", "LastModifiedTime", "lt"),
    ):
        if params.get(field) is not None:
            bound = float(params[field])
            items = [
                r
                for r in items
                if r.get(key) is not None and (r[key] > bound if op == "gt" else r[key] < bound)
            ]
    if extra_filter:
        items = [r for r in items if extra_filter(r)]
    sort_by = params.get("SortBy", default_sort)
    sort_key = {
        "Name": name_key,
        "CreationTime": "CreationTime",
        "Status": status_key or name_key,
        "CreationTimeAscending": "CreationTime",
    }.get(sort_by, "CreationTime")
    descending = params.get("SortOrder", "Descending") == "Descending"
    items.sort(key=lambda r: (r.get(sort_key) is None, r.get(sort_key) or 0), reverse=descending)
    try:
        start = int(params.get("NextToken") or 0)
    except ValueError:
        start = -1
    if start < 0:  # only tokens this API handed out are valid
        raise ValidationException(
            f"Invalid pagination token {params.get('NextToken')!r}: pass the NextToken of the "
            "previous page, or none for the first"
        )
    limit = int(params.get("MaxResults") or 100)
    page = items[start : start + limit]
    response: dict[str, Any] = {result_key: [summary(r) for r in page]}
    if start + limit < len(items):
        response["NextToken"] = str(start + limit)
    return response


# Lifecycle hooks: resource modules register what they do when the server starts
# (recover state left by a previous run) and stops (release processes and ports).
Hook = Callable[["Backend"], None]
START_HOOKS: list[Hook] = []
SHUTDOWN_HOOKS: list[Hook] = []
# run once running jobs have ended too: what jobs and model servers fork from (zygotes)
LAST_SHUTDOWN_HOOKS: list[Hook] = []


def on_start(fn: Hook) -> Hook:
    START_HOOKS.append(fn)
    return fn


def on_shutdown(fn: Hook) -> Hook:
    SHUTDOWN_HOOKS.append(fn)
    return fn


def on_last_shutdown(fn: Hook) -> Hook:
    LAST_SHUTDOWN_HOOKS.append(fn)
    return fn
