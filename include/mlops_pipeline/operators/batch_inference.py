"""batch_inference's operators and task bodies: wait for the day, score it with the approved
model (re-attaching on retry), publish only what was checked, measure drift.

The pure parts (paths, requests, manifest, PSI) are in ``mlops_pipeline.batch`` and
``mlops_pipeline.drift``; these only find, create, wait, copy and summarise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from mlops_pipeline.operators.job_watch import job_run
from mlops_pipeline.operators.registration import read_json
from mlops_pipeline.operators.sagemaker import _ReattachingJob

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_pipeline.config import Settings
    from mlops_pipeline.drift import DriftReport
    from mlops_pipeline.jobs import JobRun


class PartitionSensor(S3KeySensor):
    """Wait for a day's raw partition to be complete (its marker object); when the wait
    times out, fail naming the partition and what is there instead of a bare timeout.

    A date in the future fails at once: no amount of waiting makes it complete.
    """

    def __init__(self, *, partition: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.partition = partition

    template_fields: Sequence[str] = (*S3KeySensor.template_fields, "partition")

    def execute(self, context: Context) -> Any:
        today = dt.datetime.now(dt.UTC).date()
        if dt.date.fromisoformat(self.partition[:10]) > today:
            raise AirflowFailException(
                f"partition {self.partition} is in the future (today is {today.isoformat()} "
                "UTC): trigger batch_inference for a day that has ended"
            )
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            raise AirflowSensorTimeout(self._missing()) from None

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout:
            raise AirflowSensorTimeout(self._missing()) from None

    def _missing(self) -> str:
        keys = self.bucket_key if isinstance(self.bucket_key, list) else [self.bucket_key]
        where = ", ".join(str(k) for k in keys)
        try:
            key = str(keys[0])
            if key.startswith("s3://"):
                bucket, key = self.hook.parse_s3_url(key)
            else:
                bucket = str(self.bucket_name)
            prefix = key.rsplit("/", 1)[0] + "/"
            listing = self.hook.get_conn().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=5)
            found = [o["Key"].rsplit("/", 1)[-1] for o in listing.get("Contents", [])]
        except Exception:  # noqa: BLE001 - the message must still name the partition
            found = []
        there = f"the prefix holds {', '.join(found)}" if found else "the prefix is empty"
        return (
            f"partition {self.partition} is missing: {where} did not appear within "
            f"{self.timeout:g} s ({there}); has the export for {self.partition} run? Rerun "
            "this date once it has (airflow tasks clear or a backfill)"
        )


class TransformJobOperator(_ReattachingJob, SageMakerTransformOperator):
    """A SageMaker TransformJob from a request builder, re-attaching on retry.

    The job is named from ``job_key`` (not the Airflow run), so every run of a date with
    the same model and data finds the one job that scored it; the SageMaker Model is
    created from the package's inference container when it is not there yet.

    :param job_key: the name key (templated), see ``batch.job_key``
    :param model_package_arn: the package to score with (templated)
    :return: ``job_name``, ``job_arn``, ``output_uri``, ``model_name``
    """

    template_fields: Sequence[str] = (
        *SageMakerTransformOperator.template_fields,
        "request_args",
        "job_key",
        "model_package_arn",
    )
    kind = "Transform"
    status_key = "TransformJobStatus"
    provider_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, job_key: str, model_package_arn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_key = job_key
        self.model_package_arn = model_package_arn

    def _job_run(self, context: Context) -> JobRun:
        return dataclasses.replace(job_run(context), key=self.job_key)

    def _describe(self, name: str) -> dict[str, Any]:
        return self.hook.describe_transform_job(name)

    def _create(self, config: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        from mlops_pipeline import registry

        sm = self.hook.conn
        package = sm.describe_model_package(ModelPackageName=self.model_package_arn)
        model = config["ModelName"]
        request = registry.model_request(
            self._settings(), name=model, package=package, tags=config.get("Tags", [])
        )
        try:
            sm.create_model(**request)
            self.log.info("created model %s from %s", model, self.model_package_arn)
        except ClientError as error:
            if "already existing" not in str(error):
                raise
        # the client, not the hook's create_transform_job: its input check wants a folder
        # and refuses a prefix that ends mid-name (dt=D/part-), which SageMaker accepts
        sm.create_transform_job(**config)

    def _arn(self, description: dict[str, Any]) -> str:
        return description["TransformJobArn"]

    def _result(self, description: dict[str, Any]) -> dict[str, Any]:
        return {
            # a trailing slash: the prefix of this job's output only, not of its -r2 retry's
            "output_uri": description["TransformOutput"]["S3OutputPath"].rstrip("/") + "/",
            "model_name": description["ModelName"],
        }


# -- task bodies ---------------------------------------------------------------------------------
def resolve_model(sm: Any, s3: Any, settings: Settings, partition: str) -> dict[str, str]:
    """The group's newest Approved package and the transform's name key for this day."""
    from mlops_pipeline import batch

    try:
        package = batch.approved_package(sm, settings.model_package_group)
        etags = batch.input_etags(s3, settings, partition)
    except (batch.NoApprovedModel, FileNotFoundError) as error:
        raise AirflowFailException(str(error)) from None
    arn = package["ModelPackageArn"]
    return {
        "model_package_arn": arn,
        "model_version": batch.model_version(package),
        "model_name": batch.model_name(package),
        "job_key": batch.job_key(partition, arn, etags),
    }


def publish(
    sm: Any,
    s3: Any,
    settings: Settings,
    *,
    partition: str,
    run_id: str,
    model_package_arn: str,
    transform_job: str,
    output_uri: str,
) -> dict[str, str]:
    """Check the staged output against its input row for row, then publish it to
    ``predictions/dt=D/`` with its manifest (written last). The bytes depend on the data
    and the model alone; ``run_id`` goes into each object's ``run-id`` metadata.

    Nothing is copied unless every file checks out, so a partial or mismatched output
    leaves the day's previous publication as it was. Objects of an earlier publication
    that this one does not have are removed, so the prefix holds exactly one output.
    """
    from mlops_pipeline import batch
    from mlops_pipeline.quality.request import split_s3_uri

    paths = batch.DayPaths(settings, partition)
    package = sm.describe_model_package(ModelPackageName=model_package_arn)
    staged_bucket, staged_prefix = split_s3_uri(output_uri.rstrip("/") + "/")
    inputs = _keys(s3, settings.bucket, paths.raw_prefix + batch.DATA_FILE_PREFIX)
    checked: list[tuple[str, str, batch.CheckedOutput]] = []
    for key in inputs:
        name = key.rsplit("/", 1)[-1]
        staged = f"{staged_prefix}{name}.out"
        where = f"s3://{staged_bucket}/{staged}"
        try:
            out_body = s3.get_object(Bucket=staged_bucket, Key=staged)["Body"]
        except s3.exceptions.NoSuchKey:
            raise AirflowFailException(
                f"{where} is missing: the transform output for {name} is incomplete, "
                f"nothing of {partition} was published"
            ) from None
        in_body = s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
        try:
            result = batch.check_output(
                batch.text_lines(in_body), batch.text_lines(out_body), where
            )
        except batch.OutputMismatch as error:
            raise AirflowFailException(f"{error}; nothing of {partition} was published") from None
        target = paths.published_prefix + (name if name.endswith(".csv") else f"{name}.csv")
        checked.append((staged, target, result))
    for staged, target, _ in checked:
        s3.copy_object(
            Bucket=settings.bucket,
            Key=target,
            CopySource={"Bucket": staged_bucket, "Key": staged},
            ContentType="text/csv",
            MetadataDirective="REPLACE",
            Metadata={
                "model-package-arn": model_package_arn,
                "partition": partition,
                batch.RUN_ID_METADATA: run_id,
            },
        )
    manifest_key = paths.published_prefix + batch.MANIFEST_FILE
    keep = {target for _, target, _ in checked} | {manifest_key}
    for stale in _keys(s3, settings.bucket, paths.published_prefix):
        if stale not in keep:
            s3.delete_object(Bucket=settings.bucket, Key=stale)
    body = batch.manifest(
        partition=partition,
        package=package,
        transform_job=transform_job,
        input_uri=paths.input_uri,
        files=[(target, result) for _, target, result in checked],
    )
    s3.put_object(
        Bucket=settings.bucket,
        Key=manifest_key,
        Body=body,
        ContentType="application/json",
        Metadata={batch.RUN_ID_METADATA: run_id},
    )
    rows = sum(result.rows for _, _, result in checked)
    log.info(
        "published %d predictions of %s (model %s) to %s",
        rows,
        partition,
        batch.model_version(package),
        paths.published_uri,
    )
    return {
        "published_uri": paths.published_uri,
        "manifest_uri": settings.s3_uri(manifest_key),
    }


def measure_drift(
    sm: Any, s3: Any, settings: Settings, *, partition: str, model_package_arn: str
) -> DriftReport:
    """PSI of the day's raw rows and published scores against the package's baselines; the
    report goes to S3 and its metrics to the history (dataset ``drift``)."""
    import pandas as pd

    from mlops_pipeline import batch, drift
    from mlops_pipeline.quality.history import MetricHistoryStore
    from mlops_pipeline.quality.request import history_prefix, split_s3_uri

    package = sm.describe_model_package(ModelPackageName=model_package_arn)
    baseline_uri = (
        package.get("DriftCheckBaselines", {})
        .get("ModelDataQuality", {})
        .get("Statistics", {})
        .get("S3Uri")
    )
    if not baseline_uri:
        raise AirflowFailException(
            f"model package {model_package_arn} has no DriftCheckBaselines.ModelDataQuality "
            "statistics, so drift cannot be measured: register models through model_build"
        )
    hook = _S3Reader(s3)
    baseline = read_json(hook, baseline_uri)
    evaluation_uri = (
        package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    )
    score_histogram = None
    if evaluation_uri:
        score_histogram = read_json(hook, evaluation_uri).get("score_distribution")
    paths = batch.DayPaths(settings, partition)
    monitor = drift.DriftMonitor(baseline, score_histogram)
    columns = monitor.columns
    for key in _keys(s3, settings.bucket, paths.raw_prefix + batch.DATA_FILE_PREFIX):
        body = s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
        for chunk in pd.read_csv(
            body,
            usecols=lambda c: c in columns,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=200_000,
        ):
            monitor.add_rows(chunk)
    for key in _keys(s3, settings.bucket, paths.published_prefix):
        if key.endswith(".csv"):
            body = s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
            for chunk in pd.read_csv(body, usecols=["score"], chunksize=500_000):
                monitor.add_scores(chunk["score"].to_numpy())
    report = monitor.report(partition, settings.drift_psi_threshold)
    bucket, key = split_s3_uri(paths.drift_report_uri)
    document = {
        "model_package_arn": model_package_arn,
        "baseline_uri": baseline_uri,
        "evaluation_uri": evaluation_uri,
        "notes": report.notes,
        **report.metrics(),
    }
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=(json.dumps(document, indent=1, sort_keys=True) + "\n").encode(),
        ContentType="application/json",
    )
    MetricHistoryStore(s3, settings.bucket, history_prefix(settings)).put(
        "drift",
        partition,
        report.metrics(),
        status="drift" if report.drifted else "passed",
        job_name=None,
    )
    return report


class _S3Reader:
    """What read_json needs of an S3Hook, over a plain client."""

    def __init__(self, client: Any):
        self.conn = client

    @staticmethod
    def parse_s3_url(uri: str) -> tuple[str, str]:
        from mlops_pipeline.quality.request import split_s3_uri

        return split_s3_uri(uri)


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)
