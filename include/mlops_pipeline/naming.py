"""Idempotent SageMaker names and Airflow tags, derived from the DAG run, never from now().

A name depends only on (dag_id, the run's logical date or run id, step), so a task retry
computes the same name and can find the job its previous try started. SageMaker names
must match ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``; tuning jobs allow only 32 characters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

MAX_LENGTH = {"tuning": 32, "default": 63}
_INVALID = re.compile(r"[^a-zA-Z0-9-]+")


def _slug(text: str) -> str:
    return _INVALID.sub("-", text).strip("-").lower()


def run_key(logical_date: dt.datetime | None, run_id: str) -> str:
    """YYYYMMDD of the logical date plus a short hash of the run id.

    Scheduled runs and backfills have a logical date; the hash keeps two manual runs of
    the same date apart (and covers Airflow 3's manual runs without a logical date).
    """
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:6]
    if logical_date is None:
        return digest
    return f"{logical_date:%Y%m%d}-{digest}"


def job_name(dag_id: str, step: str, key: str, *, kind: str = "default", attempt: int = 1) -> str:
    """``<dag>-<step>-<key>[-rN]``: shortened from the left of dag_id when too long.

    ``attempt`` > 1 names a replacement for a job that failed (SageMaker never reuses a name).
    """
    limit = MAX_LENGTH.get(kind, MAX_LENGTH["default"])
    suffix = f"-{_slug(step)}-{key}" + (f"-r{attempt}" if attempt > 1 else "")
    room = limit - len(suffix)
    if room < 1:
        raise ValueError(f"step {step!r} is too long for a {kind} job name (limit {limit})")
    prefix = _slug(dag_id)[:room].strip("-") or "x"
    return prefix + suffix


def airflow_tags(dag_id: str, run_id: str, task_id: str) -> list[dict[str, str]]:
    """The tags every job and endpoint carries, for cost attribution and lineage."""
    return [
        {"Key": "airflow_dag_id", "Value": dag_id},
        {"Key": "airflow_run_id", "Value": run_id[:256]},
        {"Key": "airflow_task_id", "Value": task_id},
    ]
