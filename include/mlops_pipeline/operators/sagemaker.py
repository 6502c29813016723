"""Thin subclasses of the Amazon provider's SageMaker operators that re-attach on retry.

The provider starts a new job on every try (Processing/Training rename a clash with a
timestamp; Tuning has no handling at all), so a retried task pays for its job twice. Ours
name the job from the DAG run (``naming.job_name``) and look it up before creating:

- not there → build the request (a pure builder from ``mlops_pipeline.jobs``) and create it;
- InProgress/Stopping → re-attach: wait for it (deferred to the provider's trigger);
- Completed → return it at once;
- Failed/Stopped → start a replacement under the next ``-rN`` name.

They return a small XCom (names, ARNs, S3 URIs; one XCom key each, so downstream tasks can
use ``task.output["model_uri"]``), never the whole describe response. Waiting is deferred by
default; the trigger's log line says how far the job is (for tuning: training jobs done,
running, failed, and the best objective so far). Request arguments are templated, so
upstream XComs (``XComArg``) can be passed straight in.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerBaseOperator,
    SageMakerProcessingOperator,
    SageMakerTuningOperator,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import TriggerEvent

from mlops_pipeline import naming, progress, registry
from mlops_pipeline.links import (
    SageMakerLogsLink,
    SageMakerResourceLink,
    model_package_name,
    persist_link,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.config import Settings
    from mlops_pipeline.jobs import JobRun

RequestBuilder = Callable[..., dict[str, Any]]
MAX_ATTEMPTS = 20
# SageMaker's own trouble is worth a retry; a job that failed on its input or code fails
# the same way again, so a retry would only pay for it twice
RETRYABLE_REASONS = ("InternalServerError", "CapacityError", "ThrottlingException")

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


class _ReattachingJob(BaseOperator):
    """What the processing and tuning operators share: find or create, wait, summarise.

    Mixed into a provider operator; that operator provides ``hook``, ``config``,
    ``preprocess_config`` and the connection parameters.
    """

    kind: ClassVar[str]  # the trigger's job_type
    name_kind: ClassVar[str] = "default"  # naming.MAX_LENGTH key
    status_key: ClassVar[str]

    # provided by the provider operator this is mixed into
    config: dict[str, Any]
    log: Any
    aws_conn_id: str | None
    region_name: str | None
    verify: Any
    botocore_config: dict[str, Any] | None
    task_id: str
    preprocess_config: Callable[[], None]
    defer: Callable[..., Any]

    request: RequestBuilder
    request_args: dict[str, Any]
    step: str | None
    deferrable: bool
    poll_interval: int | None  # None: the settings' check_interval_seconds
    max_ingestion_time: int | None

    # the provider operator's arguments that differ from its defaults, per kind
    provider_defaults: ClassVar[dict[str, Any]] = {}
    # the job's page and logs: AWS console, or local_aws's pages offline (mlops_pipeline.links)
    operator_extra_links: tuple[Any, ...] = (SageMakerResourceLink(), SageMakerLogsLink())

    def __init__(
        self,
        *,
        request: RequestBuilder,
        request_args: dict[str, Any] | None = None,
        step: str | None = None,
        deferrable: bool = True,
        check_interval: int | None = None,
        max_ingestion_time: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        # the request is built at run time (it needs the run and upstream XComs): the
        # provider's config stays empty until execute() fills it
        super().__init__(
            config={},
            deferrable=deferrable,
            max_ingestion_time=max_ingestion_time,
            **{**self.provider_defaults, **kwargs},
        )
        self.request = request
        self.request_args = request_args or {}
        self.step = step
        self.poll_interval = check_interval

    # -- per kind --------------------------------------------------------------------------
    def _describe(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def _create(self, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def _result(self, description: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _arn(self, description: dict[str, Any]) -> str:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def _lookup(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self._describe(name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("ValidationException", "ResourceNotFound"):
                return None  # SageMaker's way of saying there is no such job
            raise

    def _settings(self) -> Settings:
        from mlops_pipeline.config import load_settings

        return load_settings()

    def _job_run(self, context: Context) -> JobRun:
        """Who the job is for; its ``key`` names the job (override to name it otherwise)."""
        return job_run(context)

    def execute(self, context: Context) -> dict[str, Any]:
        settings = self._settings()
        run = self._job_run(context)
        step = self.step or self.task_id
        name = ""
        description: dict[str, Any] | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            name = naming.job_name(run.dag_id, step, run.key, kind=self.name_kind, attempt=attempt)
            description = self._lookup(name)
            if description is None:
                break
            status = description[self.status_key]
            if status in ("Failed", "Stopped"):
                self.log.info(
                    "%s job %s (an earlier try) ended %s: %s; starting a replacement",
                    self.kind,
                    name,
                    status,
                    description.get("FailureReason", "no reason given"),
                )
                continue
            break
        else:
            raise AirflowFailException(
                f"{MAX_ATTEMPTS} {self.kind} jobs for this run ended Failed or Stopped "
                f"(the last: {name}); fix the cause before clearing the task again"
            )

        persist_link(context, self, self.kind.lower(), name)
        if description is None:
            self.config = self.request(settings, run, name=name, **(self.request_args or {}))
            self.preprocess_config()
            self._create(self.config)
            self.log.info("started %s job %s", self.kind, name)
        elif description[self.status_key] == "Completed":
            self.log.info(
                "%s job %s already completed (started by an earlier try): using it",
                self.kind,
                name,
            )
            return self._finish(name, description)
        else:
            self.log.info(
                "re-attaching to %s job %s (%s), started by an earlier try: %s",
                self.kind,
                name,
                description[self.status_key],
                self._arn(description),
            )
        return self._wait(name, settings)

    def _wait(self, name: str, settings: Settings) -> dict[str, Any]:
        interval = self.poll_interval or settings.check_interval_seconds
        budget = self.max_ingestion_time or settings.job_timeout_seconds
        if self.deferrable and settings.jobs_deferrable:
            self.defer(
                trigger=SageMakerProgressTrigger(
                    job_name=name,
                    job_type=self.kind,
                    waiter_delay=interval,
                    # the provider's defaults (60 or 480 polls) would give up on long jobs
                    waiter_max_attempts=max(1, math.ceil(budget / interval)),
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
                timeout=dt.timedelta(seconds=budget + 10 * interval),
            )
        description = watch_job(
            self.kind,
            name,
            describe=self._describe,
            status_key=self.status_key,
            # the provider operator's SageMakerHook (a final property mypy cannot see here)
            logs=cast(Any, self).hook.logs_hook.get_conn(),
            log=self.log,
            interval=interval,
            budget=budget,
        )
        return self._finish(name, description)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        event = event or {}
        name = str(event.get("job_name", ""))
        status = event.get("status")
        if name:  # as in execute: the link is there whichever run of the task wrote last
            persist_link(context, self, self.kind.lower(), name)
        if status == "success":
            return self._finish(name)
        if status == "timeout":
            raise AirflowException(
                f"{self.kind} job {name} did not finish within the wait budget; it keeps "
                "running and a retry of this task re-attaches to it"
            )
        description = self._lookup(name) if name else None
        if description is None:
            raise AirflowException(f"waiting for {self.kind} job {name!r} failed: {event}")
        if description[self.status_key] in ("InProgress", "Stopping"):
            # the wait broke (e.g. an AWS error in the trigger), not the job
            raise AirflowException(
                f"waiting for {self.kind} job {name} failed ({event.get('message', event)}); "
                f"the job is still {description[self.status_key]} and a retry re-attaches to it"
            )
        return self._raise_for(name, description, event)

    def _raise_for(self, name: str, description: dict[str, Any], event: dict[str, Any]) -> Any:
        status = description[self.status_key]
        reason = description.get("FailureReason") or str(event.get("message", ""))
        detail = self._failure_detail(description)
        raise failure(self.kind, name, status, reason + (f"\n{detail}" if detail else ""))

    def _failure_detail(self, description: dict[str, Any]) -> str:
        """More than the FailureReason says, for the task log (e.g. the job's last log lines)."""
        return ""

    def _finish(self, name: str, description: dict[str, Any] | None = None) -> dict[str, Any]:
        """The result of a job that ended; ``description`` when the caller has just read it."""
        description = description or self._describe(name)
        if description[self.status_key] != "Completed":
            self._raise_for(name, description, {})
        result = {"job_name": name, "job_arn": self._arn(description), **self._result(description)}
        self.log.info("%s job %s completed: %s", self.kind, name, json.dumps(result, indent=1))
        return result


class ProcessingJobOperator(_ReattachingJob, SageMakerProcessingOperator):
    """A SageMaker Processing job from a request builder; re-attaches on retry.

    :param request: ``builder(settings, run, *, name, **request_args) -> CreateProcessingJob``
    :param request_args: the builder's other arguments (templated: XComArgs welcome)
    :param step: the step in the job name (default: the task id)
    :return: ``job_name``, ``job_arn`` and ``<output name>_uri`` for each processing output
    """

    template_fields: Sequence[str] = (*SageMakerProcessingOperator.template_fields, "request_args")
    kind = "Processing"
    status_key = "ProcessingJobStatus"

    provider_defaults: ClassVar[dict[str, Any]] = {"print_log": False}

    def _describe(self, name: str) -> dict[str, Any]:
        return self.hook.describe_processing_job(name)

    def _create(self, config: dict[str, Any]) -> None:
        self.hook.create_processing_job(config, wait_for_completion=False)

    def _arn(self, description: dict[str, Any]) -> str:
        return description["ProcessingJobArn"]

    def _result(self, description: dict[str, Any]) -> dict[str, Any]:
        outputs = description.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return {
            f"{o['OutputName']}_uri": o["S3Output"]["S3Uri"] for o in outputs if "S3Output" in o
        }


class TuningJobOperator(_ReattachingJob, SageMakerTuningOperator):
    """A SageMaker HyperParameterTuningJob from a request builder; re-attaches on retry
    (the provider's tuning operator would start a second one, or fail on the name).

    :return: ``job_name``, ``job_arn``, ``best_training_job``, ``model_uri``
    """

    template_fields: Sequence[str] = (*SageMakerTuningOperator.template_fields, "request_args")
    kind = "Tuning"
    name_kind = "tuning"
    status_key = "HyperParameterTuningJobStatus"

    def _describe(self, name: str) -> dict[str, Any]:
        return self.hook.describe_tuning_job(name)

    def _create(self, config: dict[str, Any]) -> None:
        self.hook.create_tuning_job(config, wait_for_completion=False)

    def _arn(self, description: dict[str, Any]) -> str:
        return description["HyperParameterTuningJobArn"]

    def _result(self, description: dict[str, Any]) -> dict[str, Any]:
        best = description["BestTrainingJob"]["TrainingJobName"]
        self._log_leaderboard(description)
        training = self.hook.describe_training_job(best)
        return {
            "best_training_job": best,
            "model_uri": training["ModelArtifacts"]["S3ModelArtifacts"],
        }

    def _failure_detail(self, description: dict[str, Any]) -> str:
        # A failed child's FailureReason is the toolkit's "ExecuteUserScriptError ... ExitCode
        # 2": the script's own error is in its log, so show the end of it.
        failed = self.hook.conn.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=description["HyperParameterTuningJobName"],
            StatusEquals="Failed",
            MaxResults=1,
        )["TrainingJobSummaries"]
        if not failed:
            return ""
        child = failed[0]["TrainingJobName"]
        tail = log_tail(self.hook.logs_hook.get_conn(), "/aws/sagemaker/TrainingJobs", child)
        if not tail:
            return ""
        return f"last lines of the log of training job {child}:\n" + "\n".join(
            f"  {line}" for line in tail
        )

    def _log_leaderboard(self, description: dict[str, Any]) -> None:
        name = description["HyperParameterTuningJobName"]
        paginator = self.hook.conn.get_paginator(
            "list_training_jobs_for_hyper_parameter_tuning_job"
        )
        children = [
            summary
            for page in paginator.paginate(HyperParameterTuningJobName=name)
            for summary in page["TrainingJobSummaries"]
        ]
        scored = sorted(
            children,
            key=lambda s: s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get(
                "Value", -math.inf
            ),
            reverse=True,
        )
        lines = [f"tuning job {name}: {len(children)} training jobs"]
        for s in scored:
            metric = s.get("FinalHyperParameterTuningJobObjectiveMetric")
            value = f"{metric['MetricName']}={metric['Value']:.4f}" if metric else "no objective"
            tuned = ", ".join(f"{k}={v}" for k, v in sorted(s["TunedHyperParameters"].items()))
            reason = f" ({s['FailureReason'][:200]})" if s.get("FailureReason") else ""
            lines.append(
                f"  {s['TrainingJobName']}  {s['TrainingJobStatus']}  {value}  {tuned}{reason}"
            )
        self.log.info("%s", "\n".join(lines))


class ModelQualityGateOperator(BaseOperator):
    """The model quality gate: the candidate's evaluation.json against absolute thresholds
    (settings) and against the currently approved model of the group (no regression).

    Fails the task (no retry: the metrics will not change) with every reason spelled out.

    :param evaluation_uri: the evaluate job's output prefix or evaluation.json (templated)
    :return: ``evaluation_uri`` and ``compared_with`` (the approved package ARN or None)
    """

    template_fields: Sequence[str] = ("evaluation_uri",)
    ui_color = "#fdd0a2"

    def __init__(
        self, *, evaluation_uri: str, aws_conn_id: str | None = "aws_default", **kwargs: Any
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.evaluation_uri = evaluation_uri
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from mlops_pipeline import gate, jobs
        from mlops_pipeline.config import load_settings

        settings = load_settings()
        s3 = S3Hook(aws_conn_id=self.aws_conn_id)
        sm = SageMakerHook(aws_conn_id=self.aws_conn_id).conn
        uri = evaluation_json(self.evaluation_uri)
        candidate = gate.flatten_metrics(read_json(s3, uri))
        approved_arn, approved_uri = latest_approved(sm, settings.model_package_group)
        approved = None
        if approved_uri:
            approved = gate.flatten_metrics(read_json(s3, approved_uri))
        result = gate.evaluate_gate(
            candidate,
            jobs.gate_thresholds(settings),
            approved=approved,
            approved_arn=approved_arn,
            no_regression=settings.gate_no_regression,
            tolerance=settings.gate_regression_tolerance,
        )
        summary = f"{result.summary()}\nevaluation: {uri}"
        if not result.passed:
            raise AirflowFailException(summary)
        self.log.info("%s", summary)
        return {"evaluation_uri": uri, "compared_with": approved_arn}


class RegisterModelPackageOperator(SageMakerBaseOperator):
    """Register the model as a new version of the settings' model package group, pending
    manual approval; the group is created when missing.

    The request's ClientToken derives from the run and the model, so a retried task gets
    the package its earlier try registered instead of a second version.

    :param request: ``builder(settings, run, **request_args) -> CreateModelPackage input``
    :param request_args: the builder's other arguments (templated: XComArgs welcome)
    :return: ``model_package_arn``, ``model_package_group``, ``model_package_version``
    """

    template_fields: Sequence[str] = (*SageMakerBaseOperator.template_fields, "request_args")
    ui_color = "#c6dbef"
    operator_extra_links = (SageMakerResourceLink(),)

    def __init__(
        self,
        *,
        request: RequestBuilder,
        request_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(config={}, **kwargs)
        self.request = request
        self.request_args = request_args or {}

    def execute(self, context: Context) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        from mlops_pipeline.config import load_settings

        settings = load_settings()
        self.config = self.request(settings, job_run(context), **(self.request_args or {}))
        group = self.config["ModelPackageGroupName"]
        created = self.hook.create_model_package_group(
            group, "Card-fraud models registered by model_build"
        )
        try:
            arn = self.hook.conn.create_model_package(**self.config)["ModelPackageArn"]
        except ClientError:
            if created:  # leave nothing half-made behind, as the provider's operator does
                self.hook.conn.delete_model_package_group(ModelPackageGroupName=group)
            raise
        persist_link(context, self, "model-package", model_package_name(arn))
        package = self.hook.conn.describe_model_package(ModelPackageName=arn)
        self.log.info(
            "registered %s (version %s of %s), %s; metrics: %s",
            arn,
            package.get("ModelPackageVersion"),
            group,
            package.get("ModelApprovalStatus"),
            self.config["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"],
        )
        # model_deploy is scheduled on this asset: its event names the package to approve
        from mlops_pipeline.assets import model_package_asset

        for outlet in self.outlets:
            if getattr(outlet, "name", None) == model_package_asset().name:
                context["outlet_events"][outlet].extra = {"model_package_arn": arn}
        return {
            "model_package_arn": arn,
            "model_package_group": group,
            "model_package_version": package.get("ModelPackageVersion"),
        }


# -- registry, logs and S3 helpers ---------------------------------------------------------------
def log_tail(logs: Any, group: str, job: str, lines: int = 15) -> list[str]:
    """The last ``lines`` messages of a job's CloudWatch log streams ([] when there are none)."""
    from botocore.exceptions import ClientError

    try:
        streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
        messages: list[str] = []
        for stream in sorted(streams["logStreams"], key=lambda s: s.get("creationTime", 0)):
            events = logs.get_log_events(
                logGroupName=group,
                logStreamName=stream["logStreamName"],
                limit=lines,
                startFromHead=False,
            )["events"]
            messages.extend(e["message"].rstrip() for e in events)
    except ClientError:
        return []  # the reason alone must still reach the user
    return [m for m in messages if m][-lines:]


def evaluation_json(uri: str) -> str:
    """An evaluate job's output prefix or the file itself → the evaluation.json URI."""
    return uri if uri.endswith(".json") else f"{uri.rstrip('/')}/evaluation.json"


def read_json(s3: Any, uri: str) -> Any:
    """A JSON object from S3 through an S3Hook; a readable error when it is not there."""
    from botocore.exceptions import ClientError

    bucket, key = s3.parse_s3_url(uri)
    try:
        # the client, not the hook's read_key: that builds a boto3 resource (~0.4 s) per call
        body = s3.conn.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise AirflowFailException(f"{uri} does not exist") from None
        raise
    try:
        return json.loads(body)
    except ValueError as error:
        raise AirflowFailException(f"{uri} is not JSON: {error}") from None


def latest_approved(sm: Any, group: str) -> tuple[str | None, str | None]:
    """(ARN, ModelQuality statistics URI) of the group's newest Approved version, if any."""
    package = registry.newest_approved(sm, group)
    if package is None:
        return None, None
    quality = package.get("ModelMetrics", {}).get("ModelQuality", {})
    return package["ModelPackageArn"], quality.get("Statistics", {}).get("S3Uri")
