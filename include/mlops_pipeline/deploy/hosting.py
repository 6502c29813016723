"""Hosting requests and reads for model_deploy: pure builders of CreateModel and
CreateEndpointConfig from a model package, and small readers over boto3 clients
(package, endpoint, per-variant metrics, sample rows, the audit record in S3).

A Model records the package it was made from in the tag ``model_package_arn``, so the
package an endpoint serves (the baseline of the next release, the rollback target of a
promotion) is read back from the endpoint alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping
from typing import Any

from mlops_pipeline import naming, registry
from mlops_pipeline.config import Settings
from mlops_pipeline.deploy.analysis import METRICS, VariantStats, variant_stats
from mlops_pipeline.jobs import BuildPaths

PACKAGE_TAG = "model_package_arn"
NAMESPACE = "AWS/SageMaker"
TRANSITIONS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


class DeployError(ValueError):
    """Something about the package or the endpoint forbids the release; the message says
    what and how to fix it. Raised before any traffic moves."""


# -- pure builders ---------------------------------------------------------------------------
def variant_name(package: Mapping[str, Any]) -> str:
    """The production variant a package serves as: ``v<version>``."""
    return f"v{package['ModelPackageVersion']}"


def model_name(endpoint: str, package: Mapping[str, Any], run_key: str) -> str:
    return naming.job_name(endpoint, variant_name(package), run_key)


def model_request(
    settings: Settings,
    *,
    name: str,
    package: Mapping[str, Any],
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """CreateModel serving the package, tagged with the package it was made from."""
    tags = [*tags, {"Key": PACKAGE_TAG, "Value": package["ModelPackageArn"]}]
    return registry.model_request(settings, name=name, package=package, tags=tags)


def endpoint_config_request(
    settings: Settings,
    *,
    name: str,
    variants: list[tuple[str, str, float, int]],
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """CreateEndpointConfig for (variant, model, weight, instance count) production variants."""
    request: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialVariantWeight": float(weight),
                "InitialInstanceCount": count,
                "InstanceType": settings.endpoint_instance_type,
            }
            for variant, model, weight, count in variants
        ],
        "Tags": tags,
    }
    if settings.kms_key_id:
        request["KmsKeyId"] = settings.kms_key_id
    return request


def test_split_uri(package: Mapping[str, Any]) -> str:
    """The held-out test split model_build evaluated the package on: evaluation.json is at
    ``<run root>/evaluation/``, the split at ``<run root>/features/test/``."""
    statistics = (
        package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    )
    if not statistics or "/evaluation/" not in statistics:
        raise DeployError(
            f"package {package['ModelPackageArn']} has no ModelQuality statistics under an "
            "evaluation/ prefix, so its test split is unknown: register it with model_build"
        )
    root = statistics.rsplit("/evaluation/", 1)[0]
    return BuildPaths(root).features("test") + "/"


def feature_rows(text: str, limit: int) -> list[str]:
    """Up to ``limit`` CSV rows of features from a split with the label first."""
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        rows.append(",".join(row[1:]))
        if len(rows) >= limit:
            break
    return rows


def check_package(package: Mapping[str, Any], group: str) -> None:
    arn = package["ModelPackageArn"]
    if package.get("ModelPackageGroupName") != group:
        raise DeployError(
            f"package {arn} belongs to group {package.get('ModelPackageGroupName')!r}, not "
            f"{group!r} (MLOPS_MODEL_PACKAGE_GROUP): deploy a package of the group"
        )
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise DeployError(
            f"package {arn} is {status}, not Approved: approve it (model_deploy's "
            "await_approval, Studio or UpdateModelPackage) before deploying"
        )


def scaling_resource(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def autoscaling_requests(
    settings: Settings, endpoint: str, variant: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """RegisterScalableTarget and PutScalingPolicy (target tracking on invocations per
    instance) for a production variant; None when autoscaling is off."""
    low, high = settings.deploy_autoscaling_min_instances, settings.deploy_autoscaling_max_instances
    if high <= 0:
        return None
    if not 1 <= low <= high:
        raise DeployError(
            f"MLOPS_DEPLOY_AUTOSCALING_MIN_INSTANCES={low} and MLOPS_DEPLOY_AUTOSCALING_MAX_"
            f"INSTANCES={high}: need 1 <= min <= max (max 0 turns autoscaling off)"
        )
    resource = scaling_resource(endpoint, variant)
    dimension = "sagemaker:variant:DesiredInstanceCount"
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": dimension,
        "MinCapacity": low,
        "MaxCapacity": high,
    }
    policy = {
        "PolicyName": f"{endpoint}-invocations-per-instance",
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": dimension,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": settings.deploy_autoscaling_target_invocations,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    }
    return target, policy


def rollback_alarm_requests(
    settings: Settings, *, endpoint: str, variant: str, name_prefix: str, bounds: Any
) -> list[dict[str, Any]]:
    """PutMetricAlarm for native mode: the analysis's absolute bounds as CloudWatch alarms
    on the candidate variant (a blue/green fleet has no baseline to compare with live)."""
    dims = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
    ]
    common = {
        "Namespace": NAMESPACE,
        "Dimensions": dims,
        "Statistic": "Average",
        "Period": settings.deploy_metric_period_seconds,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    return [
        {
            **common,
            "AlarmName": f"{name_prefix}-5xx",
            "MetricName": "Invocation5XXErrors",
            "Threshold": bounds.max_error_rate_increase,
            "AlarmDescription": "5XX rate of the candidate (model_deploy native canary)",
        },
        {
            **common,
            "AlarmName": f"{name_prefix}-latency",
            "MetricName": "ModelLatency",
            "Threshold": bounds.max_latency_ms * 1000.0,  # ModelLatency is in microseconds
            "AlarmDescription": "ModelLatency of the candidate (model_deploy native canary)",
        },
    ]


# -- reads over clients ----------------------------------------------------------------------
def describe_endpoint(sm: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return sm.describe_endpoint(EndpointName=name)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if error.response.get("Error", {}).get("Code") == "ValidationException" and (
            "Could not find" in message
        ):
            return None
        raise


def serving_variants(sm: Any, endpoint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The endpoint config's production variants, each with its model's package ARN."""
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = []
    for pv in config["ProductionVariants"]:
        package = None
        try:
            arn = sm.describe_model(ModelName=pv["ModelName"])["ModelArn"]
            tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
            package = next((t["Value"] for t in tags if t["Key"] == PACKAGE_TAG), None)
        except Exception:  # a deleted model still serves (as in SageMaker); its package is unknown
            package = None
        variants.append({**pv, "PackageArn": package})
    return variants


def current_weights(endpoint: Mapping[str, Any]) -> dict[str, float]:
    return {
        v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
        for v in endpoint.get("ProductionVariants", [])
    }


def weights_match(actual: Mapping[str, float], wanted: Mapping[str, int]) -> bool:
    """Same shares of traffic (weights are relative; compared as fractions, 1e-6 apart)."""
    total_a, total_w = sum(actual.values()), sum(wanted.values())
    if set(actual) != set(wanted) or total_a <= 0 or total_w <= 0:
        return False
    return all(abs(actual[k] / total_a - wanted[k] / total_w) < 1e-6 for k in wanted)


def variant_window_stats(
    cloudwatch: Any, endpoint: str, variant: str, start: float, end: float, period: int
) -> VariantStats:
    """A variant's Invocations, 5XX errors and ModelLatency over [start, end)."""
    dims = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
    ]
    points = {}
    for metric in METRICS:
        response = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric,
            Dimensions=dims,
            StartTime=dt.datetime.fromtimestamp(start, dt.UTC),
            EndTime=dt.datetime.fromtimestamp(end, dt.UTC),
            Period=period,
            Statistics=["Sum", "SampleCount"],
        )
        points[metric] = response.get("Datapoints", [])
    return variant_stats(points)


def stats_json(stats: VariantStats) -> dict[str, Any]:
    return {
        "invocations": stats.invocations,
        "errors_5xx": stats.errors_5xx,
        "error_rate": stats.error_rate,
        "latency_ms": stats.latency_ms,
    }


def read_sample_rows(s3: Any, prefix_uri: str, limit: int) -> list[str]:
    """The first ``limit`` feature rows of the CSV files under ``prefix_uri``."""
    bucket, _, prefix = prefix_uri.removeprefix("s3://").partition("/")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    keys = sorted(o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(".csv"))
    rows: list[str] = []
    for key in keys:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        rows += feature_rows(text, limit - len(rows))
        if len(rows) >= limit:
            break
    if not rows:
        raise DeployError(f"no sample rows under {prefix_uri}: the test split is empty or gone")
    return rows


# -- the audit record ------------------------------------------------------------------------
def audit_uri(settings: Settings, endpoint: str, release_id: str) -> str:
    return settings.s3_uri(settings.deploy_prefix, "releases", endpoint, f"{release_id}.json")


def read_record(s3: Any, uri: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return json.loads(body)


def write_record(s3: Any, uri: str, record: Mapping[str, Any]) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(record, indent=1, default=str).encode(),
        ContentType="application/json",
    )
