"""Registering a model: the quality gate against thresholds and the approved model, and the
registration of a new package version pending approval."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerBaseOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline import registry
from mlops_pipeline.links import SageMakerResourceLink, model_package_name, persist_link
from mlops_pipeline.operators.job_watch import job_run
from mlops_pipeline.operators.sagemaker import RequestBuilder

if TYPE_CHECKING:
    from airflow.sdk import Context


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


# -- registry and S3 helpers ---------------------------------------------------------------------
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
