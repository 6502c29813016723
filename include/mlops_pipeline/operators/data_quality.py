"""DataQualityOperator: the Deequ-style gate on one dataset partition.

It derives anomaly bounds from the metric history, runs the GX validation as a SageMaker
Processing job (through the provider's SageMakerHook; deferred to the provider's
SageMakerTrigger when ``deferrable``), reads the job's result from S3 and applies the
severities: unmet Error expectations or unreadable input fail the task with a readable
summary (AirflowFailException: bad data is not retried), Warnings pass with an alert. The
partition's metrics are then recorded in the history (a rerun replaces that date's entry).

The heavy lifting is in mlops_pipeline.quality (pure) and containers/validate.py (the job).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_pipeline import naming
from mlops_pipeline.links import (
    DataDocsLink,
    SageMakerLogsLink,
    SageMakerResourceLink,
    persist_data_docs,
    persist_link,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.config import Settings

# Called with the gate's report when a partition passes with warnings: a callable taking
# (report, context), or an Airflow notifier (e.g. the Slack one), which finds the report in
# its template context as ``data_quality`` (``{{ data_quality.summary }}``).
WarningHook = Callable[[dict[str, Any], Any], None] | BaseNotifier


class DataQualityOperator(BaseOperator):
    """Validate one partition of ``dataset`` with its GX suite; fail the task on bad data.

    :param dataset: the suite's name (``great_expectations/gx/expectations/<dataset>.json``)
    :param partition: the partition date, YYYY-MM-DD (templated; default ``{{ ds }}``)
    :param input_uri: the partition's S3 prefix (templated); default from the suite's
        ``meta.partition_uri`` under the settings' bucket
    :param on_warning: alert hook(s) for partitions that pass with warnings
    :param record_history: store this partition's metrics in the history
    :param history_before: anomaly checks compare with history dated before this day
        (templated; default: the partition itself). A window validated in parallel passes
        its first day, so no day's verdict depends on which other day finished first.
    """

    template_fields: Sequence[str] = ("partition", "input_uri", "history_before")
    ui_color = "#c7e9c0"
    # the validation job, its log and its Data Docs page (mlops_pipeline.links)
    operator_extra_links = (SageMakerResourceLink(), SageMakerLogsLink(), DataDocsLink())

    def __init__(
        self,
        *,
        dataset: str,
        partition: str = "{{ ds }}",
        input_uri: str | None = None,
        aws_conn_id: str | None = "aws_default",
        deferrable: bool = True,
        check_interval: int | None = None,
        max_runtime_seconds: int = 3600,
        instance_type: str | None = None,
        on_warning: WarningHook | Sequence[WarningHook] | None = None,
        record_history: bool = True,
        gx_root: str | None = None,
        history_before: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.partition = partition
        self.input_uri = input_uri
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable
        self.check_interval = check_interval
        self.max_runtime_seconds = max_runtime_seconds
        self.instance_type = instance_type
        if on_warning is None:
            self.on_warning: list[WarningHook] = []
        elif isinstance(on_warning, BaseNotifier) or callable(on_warning):
            self.on_warning = [on_warning]
        else:
            self.on_warning = list(on_warning)
        self.record_history = record_history
        self.gx_root = gx_root
        self.history_before = history_before

    # -- execution -------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from mlops_pipeline.quality import anomaly, history, request, suites

        settings = self._settings()
        root = suites.project_root(settings) if not self.gx_root else _path(self.gx_root)
        partition = _partition(self.partition, self.dataset)
        try:  # a broken suite or a missing location fails the same way on every retry
            suite = suites.load_suite(root, self.dataset)
            input_uri = self.input_uri or suites.partition_uri(suite, settings, partition)
        except suites.SuiteError as exc:
            raise AirflowFailException(str(exc)) from None
        s3 = self._s3()
        self._require_partition(s3, input_uri, partition)

        store = history.MetricHistoryStore(s3, settings.bucket, request.history_prefix(settings))
        plan = anomaly.AnomalyPlan()
        config_path = suites.anomaly_path(root, self.dataset)
        if config_path.is_file():
            checks = anomaly.load_config(str(config_path))
            until = partition
            if self.history_before:
                until = min(partition, _partition(self.history_before, self.dataset))
            past = store.before(self.dataset, until, days=checks.history_days)
            plan = anomaly.plan(checks, [e.metrics for e in past])
            for note in plan.notes:
                self.log.info("%s", note)

        ti = context["ti"]
        run_key = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
        name = request.job_name(
            self.dataset, partition, run_key=run_key, try_number=ti.try_number or 1
        )
        run = request.run_uri(settings, self.dataset, partition, name)
        docs = request.docs_params(settings, self.dataset, partition, name)
        params: dict[str, Any] = {
            "dataset": self.dataset,
            "partition": partition,
            "input_uri": input_uri,
            "output_uri": f"{run}/output",
            "expectations": plan.expectations,
            "parameters": {**partition_window(partition), **plan.parameters},
            "anomaly_notes": plan.notes,
            **docs,
        }
        request.upload_job_files(s3, run, suite=suite, params=params)
        config = request.build_request(
            name=name,
            settings=settings,
            input_uri=input_uri,
            run=run,
            tags=naming.airflow_tags(ti.dag_id, ti.run_id, ti.task_id),
            max_runtime_seconds=self.max_runtime_seconds,
            instance_type=self.instance_type,
            docs_uri=docs["docs_uri"].rsplit("/", 1)[0] + "/",
        )
        interval = self.check_interval or settings.check_interval_seconds
        self.log.info(
            "validating %s partition %s (%s) in processing job %s",
            self.dataset,
            partition,
            input_uri,
            name,
        )
        deferrable = self.deferrable and settings.jobs_deferrable
        hook = SageMakerHook(aws_conn_id=self.aws_conn_id)
        hook.create_processing_job(config, wait_for_completion=False)
        self._persist_links(context, name, partition)
        from mlops_pipeline.operators.job_watch import SageMakerProgressTrigger, watch_job

        if deferrable:  # else the wait holds the worker slot (no triggerer in the deployment)
            self.defer(
                trigger=SageMakerProgressTrigger(
                    job_name=name,
                    job_type="Processing",
                    waiter_delay=interval,
                    # the provider's default (60 attempts) would give up long before the job
                    waiter_max_attempts=math.ceil(self.max_runtime_seconds / interval) + 10,
                    aws_conn_id=self.aws_conn_id,
                ),
                method_name="execute_complete",
                timeout=dt.timedelta(seconds=self.max_runtime_seconds + 600),
            )
        description = watch_job(
            "Processing",
            name,
            describe=hook.describe_processing_job,
            status_key="ProcessingJobStatus",
            logs=hook.logs_hook.get_conn(),
            log=self.log,
            interval=interval,
            budget=self.max_runtime_seconds,
        )
        if description["ProcessingJobStatus"] != "Completed":
            raise AirflowException(
                f"validation job {name} for {self.dataset} partition {partition} ended "
                f"{description['ProcessingJobStatus']}: {description.get('FailureReason', '')}"
            )
        return self._finish(context, name=name, run=run, partition=partition)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from mlops_pipeline.quality import request

        event = event or {}
        # everything else derives from the job name: no state rides along with the deferral
        name = str(event.get("job_name", "?"))
        partition = _partition(self.partition, self.dataset)
        self._persist_links(context, name, partition)  # a resumed task starts with none
        if event.get("status") != "success":
            # the job itself broke (not the data): worth a retry
            raise AirflowException(
                f"validation job {name} for {self.dataset} partition {partition} ended "
                f"{event.get('status', 'without status')}: {event.get('message', '')}"
            )
        run = request.run_uri(self._settings(), self.dataset, partition, name)
        return self._finish(context, name=name, run=run, partition=partition)

    def _finish(self, context: Context, *, name: str, run: str, partition: str) -> dict[str, Any]:
        from mlops_pipeline.quality import history, request, severity

        settings = self._settings()
        s3 = self._s3()
        result_uri = f"{run}/output/result.json"
        bucket, key = request.split_s3_uri(result_uri)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            result = json.loads(body)
            verdict = severity.evaluate(result)
        except (ValueError, severity.ResultError, s3.exceptions.NoSuchKey) as exc:
            raise AirflowFailException(
                f"validation job {name} for {self.dataset} partition {partition} left no "
                f"usable result at {result_uri}: {exc}"
            ) from None
        summary = verdict.summary(result_uri)
        if self.record_history and result.get("metrics"):
            store = history.MetricHistoryStore(
                s3, settings.bucket, request.history_prefix(settings)
            )
            store.put(
                self.dataset, partition, result["metrics"], status=verdict.status, job_name=name
            )
        if not verdict.passed:
            raise AirflowFailException(summary)
        self.log.info("%s", summary)
        report = {
            **verdict.to_xcom(),
            "summary": summary,
            "result_uri": result_uri,
            "job_name": name,
        }
        if verdict.warnings:
            self._alert(report, context)
        return report

    # -- helpers ---------------------------------------------------------------------------
    def _persist_links(self, context: Context, name: str, partition: str) -> None:
        from mlops_pipeline.quality import request

        persist_link(context, self, "processing", name)
        persist_data_docs(context, self.dataset, request.docs_page(partition, name))

    def _alert(self, report: dict[str, Any], context: Context) -> None:
        for hook in self.on_warning:
            try:
                if isinstance(hook, BaseNotifier):
                    hook({**context, "data_quality": report})
                else:
                    hook(report, context)
            except Exception:
                # an alerting outage must not turn a passing gate into a failure
                self.log.exception("data-quality warning alert %r failed", hook)

    def _settings(self) -> Settings:
        from mlops_pipeline.config import load_settings

        return load_settings()

    def _s3(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id).get_conn()

    def _require_partition(self, s3: Any, input_uri: str, partition: str) -> None:
        from mlops_pipeline.quality.request import split_s3_uri

        bucket, prefix = split_s3_uri(input_uri)
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=100)
        names = [o["Key"].rsplit("/", 1)[-1] for o in listing.get("Contents", [])]
        if not any(n and not n.startswith(("_", ".")) for n in names):
            raise AirflowFailException(
                f"Data quality gate FAILED for dataset {self.dataset!r}, partition {partition}: "
                f"missing partition: no data files under {input_uri} (has the upstream export "
                "for this date run?)"
            )


def partition_window(partition: str) -> dict[str, str]:
    """``partition_start``/``partition_end`` for suites that bound timestamps to the day."""
    day = dt.date.fromisoformat(partition)
    return {
        "partition_start": f"{day.isoformat()}T00:00:00Z",
        "partition_end": f"{day.isoformat()}T23:59:59.999999Z",
    }


def _partition(value: str, dataset: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise AirflowFailException(
            f"dataset {dataset!r}: partition {value!r} is not a date (YYYY-MM-DD)"
        ) from None


def _path(value: str) -> Any:
    from pathlib import Path

    return Path(value)
