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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerProcessingOperator,
    SageMakerTuningOperator,
)
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_pipeline import naming
from mlops_pipeline.links import SageMakerLogsLink, SageMakerResourceLink, persist_link
from mlops_pipeline.operators.job_watch import (
    SageMakerProgressTrigger,  # also here: triggers stored before the split name this module
    failure,
    job_run,
    watch_job,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.config import Settings
    from mlops_pipeline.jobs import JobRun

RequestBuilder = Callable[..., dict[str, Any]]
MAX_ATTEMPTS = 20


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


# -- logs --------------------------------------------------------------------------------------
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
