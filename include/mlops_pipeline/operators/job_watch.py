"""Waiting for a SageMaker job from a task: the deferred trigger, the in-worker loop and the
progress line both log, the run a job belongs to, and the exception a failed job raises.

Shared by the re-attaching job operators (``operators.sagemaker``), the data-quality gate,
batch inference and the deployment operators.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import TriggerEvent

from mlops_pipeline import naming, progress

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.jobs import JobRun

# SageMaker's own trouble is worth a retry; a job that failed on its input or code fails
# the same way again, so a retry would only pay for it twice
RETRYABLE_REASONS = ("InternalServerError", "CapacityError", "ThrottlingException")

# JMESPath over the Describe* response: what the wait log shows each poll
# JMESPath over the Describe* response: what the wait log shows each poll
PROGRESS_QUERIES: dict[str, list[str]] = {
    "tuning": [
        "HyperParameterTuningJobStatus",
        "join('', ['training jobs: ', to_string(TrainingJobStatusCounters.Completed), ' done, ',"
        " to_string(TrainingJobStatusCounters.InProgress), ' running, ',"
        " to_string(sum([TrainingJobStatusCounters.NonRetryableError,"
        " TrainingJobStatusCounters.RetryableError])), ' failed, of ',"
        " to_string(HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs)])",
        "BestTrainingJob && join('', ['best ',"
        " BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric.MetricName, ' = ',"
        " to_string(BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric.Value), ' (',"
        " BestTrainingJob.TrainingJobName, ')'])",
    ],
    "processing": ["ProcessingJobStatus", "ExitMessage"],
    "endpoint": ["EndpointStatus", "FailureReason"],
    "transform": ["TransformJobStatus", "FailureReason"],
    "training": [
        "TrainingJobStatus",
        "SecondaryStatus",
        "SecondaryStatusTransitions[-1].StatusMessage",
    ],
}


class SageMakerProgressTrigger(SageMakerTrigger):
    """The provider's SageMakerTrigger, logging the job's progress when it changes (rather
    than "not done yet" on each poll) and the job's own output as it is written.

    The provider's wait runs unmodified; a filter on its logger drops the status lines that
    repeat the last one, and a second coroutine follows the job's CloudWatch Logs streams.
    """

    def __init__(self, job_name: str, job_type: str, **kwargs: Any) -> None:
        super().__init__(job_name=job_name, job_type=job_type, **kwargs)
        self.status_message = f"{job_type} job {job_name}"
        self.status_queries = PROGRESS_QUERIES.get(job_type.lower(), self.status_queries)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio
        import logging

        only_changes = progress.OnlyChanges(self.status_message)
        waiter_log = logging.getLogger(progress.WAITER_LOGGER)
        waiter_log.addFilter(only_changes)
        done = asyncio.Event()
        follower = asyncio.create_task(self._follow_logs(done))
        try:
            async for event in super().run():
                done.set()
                await follower  # the job's last lines before the task resumes
                yield event
        finally:
            waiter_log.removeFilter(only_changes)
            follower.cancel()

    async def _follow_logs(self, done: Any) -> None:
        import asyncio

        from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

        follower = progress.LogFollower.for_job(self.job_type, self.job_name)
        client: list[Any] = []

        def poll() -> list[str]:
            if not client:  # built in the thread: the connection lookup is sync
                client.append(
                    AwsLogsHook(
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        config=self.botocore_config,
                    ).conn
                )
            return follower.poll(client[0])

        while True:
            finished = done.is_set()
            try:
                progress.emit(self.log.info, self.job_name, await asyncio.to_thread(poll))
            except Exception as error:  # noqa: BLE001 - the job's output is a courtesy
                # said once (e.g. no logs:GetLogEvents permission), not on every poll
                self.log.warning("not following the log of %s: %s", self.job_name, error)
                return
            if finished:
                return
            try:
                await asyncio.wait_for(done.wait(), timeout=self.waiter_delay)
            except TimeoutError:
                pass


def progress_line(job_type: str, description: Mapping[str, Any]) -> str:
    import jmespath

    values = []
    for query in PROGRESS_QUERIES[job_type.lower()]:
        value = jmespath.search(query, dict(description))
        if value not in (None, ""):
            values.append(str(value))
    return " - ".join(values)


def watch_job(
    kind: str,
    name: str,
    *,
    describe: Callable[[str], dict[str, Any]],
    status_key: str,
    logs: Any,
    log: Any,
    interval: float,
    budget: float,
) -> dict[str, Any]:
    """Wait in the worker until the job ends; its description then. The task log gets the
    progress line when it changes and the job's output as it is written."""
    changes = progress.StatusChanges()
    follower: progress.LogFollower | None = progress.LogFollower.for_job(kind, name)
    deadline = time.monotonic() + budget
    while True:
        description = describe(name)
        status = description[status_key]
        running = status in ("InProgress", "Stopping")
        try:
            if follower is not None:
                progress.emit(log.info, name, follower.poll(logs))
        except Exception as error:  # noqa: BLE001 - the job's output is a courtesy
            # said once (e.g. no logs:GetLogEvents permission), not on every poll
            log.warning("not following the log of %s: %s", name, error)
            follower = None
        if not running:
            return description
        if time.monotonic() > deadline:
            raise AirflowException(
                f"{kind} job {name} still {status} after {budget} s; it keeps running "
                "and a retry of this task re-attaches to it"
            )
        line = changes.line(progress_line(kind, description))
        if line is not None:
            log.info("%s job %s: %s", kind, name, line)
        time.sleep(interval)


def job_run(context: Context) -> JobRun:
    """Who the job is for, from the task's context (logical date may be absent)."""
    from mlops_pipeline.jobs import JobRun

    ti = context["ti"]
    dag_run = context["dag_run"]
    logical_date = getattr(dag_run, "logical_date", None)
    return JobRun(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        key=naming.run_key(logical_date, ti.run_id),
    )


def failure(kind: str, name: str, status: str, reason: str) -> AirflowException:
    """The exception for a job that did not complete: retryable only when a retry can help."""
    message = f"SageMaker {kind} job {name} ended {status}: {reason or '(no reason given)'}"
    if status == "Failed" and not reason.startswith(RETRYABLE_REASONS):
        return AirflowFailException(message)
    return AirflowException(message)
