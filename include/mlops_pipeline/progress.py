"""What a task log shows while a SageMaker job runs: its status when it changes, and the
job's own output (its CloudWatch Logs streams) as it is written.

The provider's waiters log a status line on every poll (``async_wait`` in the triggerer,
``SageMakerHook.check_status`` in a worker): a job of a minute at a 1 s interval writes 60
identical "InProgress" lines and none of what the job printed. ``OnlyChanges`` filters the
provider's line down to its changes, without touching the provider's wait; ``LogFollower``
reads the job's streams from where it stopped the last time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# where SageMaker writes each kind of job's output; a tuning job's are its children's
LOG_GROUPS = {
    "processing": "/aws/sagemaker/ProcessingJobs",
    "training": "/aws/sagemaker/TrainingJobs",
    "transform": "/aws/sagemaker/TransformJobs",
    "tuning": "/aws/sagemaker/TrainingJobs",
    "endpoint": "/aws/sagemaker/Endpoints/{name}",  # one group per endpoint
}
# the provider's per-poll status line in async_wait: log.info("%s: %s", status_message, status)
WAITER_LOGGER = "airflow.providers.amazon.aws.utils.waiter_with_logging"


def log_group(job_type: str, job_name: str = "") -> str:
    return LOG_GROUPS[job_type.lower()].format(name=job_name)


def log_prefix(job_type: str, job_name: str) -> str:
    """The streams' name prefix: ``<job>/`` (one per host), for a tuning job its
    children's, which are named ``<tuning job>-NNN-<hash>``, for an endpoint every stream
    of its group (``<variant>/<instance>``)."""
    kind = job_type.lower()
    if kind == "endpoint":
        return ""
    return f"{job_name}-" if kind == "tuning" else f"{job_name}/"


class OnlyChanges(logging.Filter):
    """Drops the provider waiter's status line for ``status_message`` while the status it
    reports is the one logged last; other records pass untouched."""

    def __init__(self, status_message: str) -> None:
        super().__init__()
        self.status_message = status_message
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 2 or args[0] != self.status_message:
            return True
        status = str(args[1])  # the provider's lazy formatter: the JMESPath queries' values
        if status == self.last:
            return False
        self.last = status
        return True


@dataclass
class StatusChanges:
    """The sync wait loops' counterpart of ``OnlyChanges``: ``line(status)`` is the status
    when it differs from the last one, else None."""

    last: str | None = None

    def line(self, status: str) -> str | None:
        if status == self.last:
            return None
        self.last = status
        return status


@dataclass
class LogFollower:
    """Reads a job's CloudWatch Logs streams incrementally: each ``poll`` returns the lines
    written since the previous one (every stream from its start on the first call).

    Lines of a job with several streams (hosts, a tuning job's children) are labelled
    with their stream's job and host.
    """

    group: str
    prefix: str
    labelled: bool = False
    _tokens: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def for_job(cls, job_type: str, job_name: str) -> LogFollower:
        return cls(
            log_group(job_type, job_name),
            log_prefix(job_type, job_name),
            labelled=job_type.lower() in ("tuning", "endpoint"),
        )

    def poll(self, logs: Any) -> list[str]:
        """New lines of every stream; [] while the group or streams do not exist yet."""
        try:
            streams = _streams(logs, self.group, self.prefix)
        except logs.exceptions.ResourceNotFoundException:
            return []
        lines: list[str] = []
        for stream in streams:
            label = f"[{stream.removeprefix(self.prefix)}] " if self.labelled else ""
            for message in self._new_messages(logs, stream):
                lines.append(f"{label}{message}")
        return lines

    def _new_messages(self, logs: Any, stream: str) -> list[str]:
        messages: list[str] = []
        token = self._tokens.get(stream)
        while True:
            kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": stream}
            kwargs.update({"nextToken": token} if token else {"startFromHead": True})
            page = logs.get_log_events(**kwargs)
            messages += [e["message"].rstrip("\n") for e in page.get("events", [])]
            following = page.get("nextForwardToken")
            if not page.get("events") or following in (None, token):
                # CloudWatch answers the last page again with the same token: caught up
                self._tokens[stream] = following or token
                return messages
            token = following


def _streams(logs: Any, group: str, prefix: str) -> list[str]:
    names: list[tuple[int, str]] = []
    kwargs: dict[str, Any] = {"logGroupName": group}
    if prefix:
        kwargs["logStreamNamePrefix"] = prefix
    while True:
        page = logs.describe_log_streams(**kwargs)
        names += [(s.get("creationTime", 0), s["logStreamName"]) for s in page["logStreams"]]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return [name for _, name in sorted(names)]


def emit(log: Callable[..., Any], job: str, lines: list[str]) -> None:
    """The job's output into the task log, each line marked as the job's."""
    for line in lines:
        log("[%s] %s", job, line)
