"""
### batch_inference: score each day's card transactions with the approved model

```
wait_for_partition    the day's raw partition is complete (its _SUCCESS marker); deferred
                      to the triggerer, failing with the partition's name after a timeout
→ validate_input      the data-quality gate on the day (suite transactions, anomaly checks
                      on the metric history): bad data stops here, nothing is scored
→ resolve_model       the group's newest Approved model package (none: a clear failure)
→ transform           TransformJob with that model: JoinSource=Input and filters keep
                      every score with its transaction_id; output to a staging prefix
→ validate_predictions  the gate on the output (suite predictions, anomaly checks on the
                      score distribution)
→ publish             checked row for row against the input, then copied to
                      predictions/dt=YYYY-MM-DD/ with a manifest (model package, rows,
                      checksums, run id)
→ detect_drift        PSI per feature and of the score against the package's training
                      baseline; over the threshold emits card_fraud_drift (model_build
                      retrains on the window ending that day)
```

**Schedule.** `@daily` over data intervals, with catchup from `MLOPS_BATCH_START_DATE`: the
run at midnight scores the day that just ended (its logical date), so a late day, a rerun
(`airflow tasks clear`) or a backfill (`airflow backfill create --dag-id batch_inference
--from-date 2026-01-01 --to-date 2026-01-07`, with the DAG unpaused) scores exactly the
days named. `MLOPS_BATCH_MAX_ACTIVE_RUNS` days run at once.

**Idempotence.** The transform job is named from the date and a hash of the model package
and the input objects, so a rerun with the same model and data re-attaches to the job that
scored the day (one job per date, never a second bill) and publishes the same bytes. Only
a complete, validated output replaces `predictions/dt=…/`; a run that fails anywhere
before publish leaves the previous publication untouched.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import AssetAlias, chain, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from mlops_pipeline import batch
from mlops_pipeline.config import load_settings
from mlops_pipeline.notifications import alerting_args
from mlops_pipeline.operators.batch_inference import PartitionSensor, TransformJobOperator
from mlops_pipeline.operators.data_quality import DataQualityOperator

settings = load_settings()
log = logging.getLogger(__name__)
# drift events go out through an alias: detect_drift emits one only when the day drifted
DRIFT_EVENTS = AssetAlias(name="card_fraud_drift_events")


@dag(
    # @daily over data intervals: the run at midnight scores the day that just ended (its
    # logical date), not the one that is starting
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime.fromisoformat(settings.batch_start_date).replace(tzinfo=dt.UTC),
    catchup=True,
    max_active_runs=settings.batch_max_active_runs,
    description="Score each day's transactions with the approved model, publish them, watch for drift",
    doc_md=__doc__,
    tags=["ml", "card-fraud", "sagemaker", "inference"],
    # every failed task alerts (Slack, else the alerts file): mlops_pipeline.notifications
    default_args={**alerting_args(), "retries": 1, "retry_delay": dt.timedelta(minutes=1)},
)
def batch_inference():
    wait_for_partition = PartitionSensor(
        task_id="wait_for_partition",
        partition="{{ ds }}",
        bucket_name=settings.bucket,
        bucket_key=f"{settings.raw_prefix.strip('/')}/dt={{{{ ds }}}}/{settings.partition_marker}",
        aws_conn_id=settings.aws_conn_id,
        deferrable=settings.partition_sensor_deferrable,
        poke_interval=settings.partition_poke_seconds,
        timeout=settings.partition_timeout_seconds,
        retries=0,  # the timeout is the wait: a retry would only wait as long again
    )

    validate_input = DataQualityOperator(task_id="validate_input", dataset="transactions")

    @task(multiple_outputs=True)
    def resolve_model(ds: str) -> dict[str, str]:
        """The Approved package's ARN, version and model name, and the transform's job key."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from mlops_pipeline.operators import batch_inference as ops

        conn = settings.aws_conn_id
        return ops.resolve_model(
            SageMakerHook(aws_conn_id=conn).conn, S3Hook(aws_conn_id=conn).conn, settings, ds
        )

    model = resolve_model()

    transform = TransformJobOperator(
        task_id="transform",
        request=batch.transform_request,
        request_args={
            "model_name": model["model_name"],
            "model_version": model["model_version"],
            "partition": "{{ ds }}",
        },
        job_key=model["job_key"],
        model_package_arn=model["model_package_arn"],
        max_ingestion_time=settings.transform_max_runtime_seconds,
    )

    validate_predictions = DataQualityOperator(
        task_id="validate_predictions",
        dataset="predictions",
        input_uri=transform.output["output_uri"],
    )

    @task(multiple_outputs=True)
    def publish(model_package_arn: str, transform_job: str, output_uri: str, **context):
        """The checked output to predictions/dt={ds}/, manifest last."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from mlops_pipeline.operators import batch_inference as ops

        conn = settings.aws_conn_id
        return ops.publish(
            SageMakerHook(aws_conn_id=conn).conn,
            S3Hook(aws_conn_id=conn).conn,
            settings,
            partition=context["ds"],
            run_id=context["run_id"],
            model_package_arn=model_package_arn,
            transform_job=transform_job,
            output_uri=output_uri,
        )

    published = publish(
        model["model_package_arn"], transform.output["job_name"], transform.output["output_uri"]
    )

    @task(outlets=[DRIFT_EVENTS])
    def detect_drift(model_package_arn: str, **context) -> dict:
        """PSI against the training baseline; a drift event (with the partition) when over."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from mlops_pipeline.assets import drift_asset
        from mlops_pipeline.operators import batch_inference as ops

        conn = settings.aws_conn_id
        ds = context["ds"]
        report = ops.measure_drift(
            SageMakerHook(aws_conn_id=conn).conn,
            S3Hook(aws_conn_id=conn).conn,
            settings,
            partition=ds,
            model_package_arn=model_package_arn,
        )
        for note in report.notes:
            log.info("%s", note)
        summary = report.summary(settings.drift_top_features)
        top = [name for name, _ in report.drifting()[: settings.drift_top_features]]
        if report.drifted:
            from mlops_pipeline.notifications import drift_alert, send

            log.warning("%s; drifting: %s: retraining requested", summary, ", ".join(top))
            # the team hears of it too (Slack, else the alerts file); never fails the task
            alert = drift_alert(
                context["dag"].dag_id,
                ds,
                report.top(settings.drift_top_features),
                settings.drift_psi_threshold,
                statistic="PSI",
            )
            send(alert, settings, context)
            context["outlet_events"][DRIFT_EVENTS].add(
                drift_asset(settings),
                extra={
                    "partition": ds,
                    "top_features": top,
                    "score_psi": report.metrics()["score_psi"],
                    "max_feature_psi": report.metrics()["max_feature_psi"],
                    "model_package_arn": model_package_arn,
                },
            )
        else:
            log.info("%s", summary)
        return {
            "drifted": report.drifted,
            "report_uri": batch.DayPaths(settings, ds).drift_report_uri,
        }

    drift = detect_drift(model["model_package_arn"])

    chain(
        wait_for_partition,
        validate_input,
        model,
        transform,
        validate_predictions,
        published,
        drift,
    )


batch_inference()
