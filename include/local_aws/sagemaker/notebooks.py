"""Notebook instances: the records and status changes that AWS clients and waiters expect.

No Jupyter runs: code that creates, starts, stops and deletes notebook instances (infra
scripts, the provider's notebook operators) sees Pending → InService, Stopping → Stopped
and Deleting → gone, each change a moment after the call, as on AWS.
"""

from __future__ import annotations

import threading
from typing import Any

from local_aws.sagemaker import api
from local_aws.sagemaker.api import create_record, list_page, now, operation, pick, shape_response
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import ValidationException

KIND = "notebook-instances"
# How long a transition takes here: long enough to be seen by a poller, short for tests.
SETTLE_SECONDS = 0.5
# status while changing → status once settled (None: the record is deleted)
_SETTLES: dict[str, str | None] = {"Pending": "InService", "Stopping": "Stopped", "Deleting": None}

SUMMARY_KEYS = (
    "NotebookInstanceName",
    "NotebookInstanceArn",
    "NotebookInstanceStatus",
    "Url",
    "InstanceType",
    "CreationTime",
    "LastModifiedTime",
    "NotebookInstanceLifecycleConfigName",
    "DefaultCodeRepository",
    "AdditionalCodeRepositories",
)


@operation("CreateNotebookInstance")
def create_notebook_instance(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["NotebookInstanceName"]
    arn = backend.arn("notebook-instance", name.lower())
    stamp = now()
    record = dict(
        p,
        NotebookInstanceArn=arn,
        NotebookInstanceStatus="Pending",
        Url=f"{name}.notebook.{backend.region}.sagemaker.aws",
        VolumeSizeInGB=p.get("VolumeSizeInGB", 5),
        DirectInternetAccess=p.get("DirectInternetAccess", "Enabled"),
        RootAccess=p.get("RootAccess", "Enabled"),
        CreationTime=stamp,
        LastModifiedTime=stamp,
    )
    taken = ValidationException(f"Cannot create a duplicate Notebook Instance ({arn})")
    create_record(backend, KIND, name, record, arn=arn, exists=taken)
    _settle_later(backend, name, "Pending")
    return {"NotebookInstanceArn": arn}


def _get(backend: Backend, name: str) -> dict[str, Any]:
    record = backend.store.get(KIND, name)
    if record is None:
        raise ValidationException("RecordNotFound")  # AWS's whole message, which waiters match
    return record


@operation("DescribeNotebookInstance")
def describe_notebook_instance(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeNotebookInstance", _get(backend, p["NotebookInstanceName"]))


@operation("ListNotebookInstances")
def list_notebook_instances(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return list_page(
        backend.store.values(KIND),
        p,
        name_key="NotebookInstanceName",
        status_key="NotebookInstanceStatus",
        summary=lambda r: pick(r, SUMMARY_KEYS),
        result_key="NotebookInstances",
    )


@operation("StartNotebookInstance")
def start_notebook_instance(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _change(
        backend, p["NotebookInstanceName"], frm=("Stopped", "Failed"), to="Pending", verb="start"
    )
    return {}


@operation("StopNotebookInstance")
def stop_notebook_instance(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _change(backend, p["NotebookInstanceName"], frm=("InService",), to="Stopping", verb="stop")
    return {}


@operation("DeleteNotebookInstance")
def delete_notebook_instance(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    _change(
        backend, p["NotebookInstanceName"], frm=("Stopped", "Failed"), to="Deleting", verb="delete"
    )
    return {}


def _change(backend: Backend, name: str, *, frm: tuple[str, ...], to: str, verb: str) -> None:
    with backend.store.lock:  # check-then-set as one step
        status = _get(backend, name)["NotebookInstanceStatus"]
        if status not in frm:
            raise ValidationException(
                f"Status ({status}) not in ({', '.join(frm)}). Unable to {verb} the notebook "
                f"instance {name}."
            )
        backend.store.update(KIND, name, {"NotebookInstanceStatus": to, "LastModifiedTime": now()})
    _settle_later(backend, name, to)


def _settle_later(backend: Backend, name: str, changing: str) -> None:
    timer = threading.Timer(SETTLE_SECONDS, _settle, args=(backend, name, changing))
    timer.daemon = True
    timer.start()


def _settle(backend: Backend, name: str, changing: str) -> None:
    with backend.store.lock:
        record = backend.store.get(KIND, name)
        if record is None or record["NotebookInstanceStatus"] != changing:
            return  # changed again (or gone) meanwhile
        settled = _SETTLES[changing]
        if settled is None:
            backend.store.delete(KIND, name)
            backend.tags.drop(record["NotebookInstanceArn"])
            return
        backend.store.update(
            KIND, name, {"NotebookInstanceStatus": settled, "LastModifiedTime": now()}
        )


@api.on_start
def settle_after_restart(backend: Backend) -> None:
    """A change that was under way when the server stopped completes now."""
    for record in list(backend.store.values(KIND)):
        if record["NotebookInstanceStatus"] in _SETTLES:
            _settle(backend, record["NotebookInstanceName"], record["NotebookInstanceStatus"])
