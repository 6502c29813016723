"""The model registry as every DAG reads it: the group's newest Approved package, and the
SageMaker Model that serves a package (batch_inference's transform and model_deploy's
endpoints make the same CreateModel from it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_pipeline.config import Settings


def newest_approved(sm: Any, group: str) -> dict[str, Any] | None:
    """DescribeModelPackage of the group's newest Approved version; None when the group does
    not exist yet or nothing in it is approved (both are normal before the first approval)."""
    from botocore.exceptions import ClientError

    try:
        listing = sm.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "ValidationException",
            "ResourceNotFound",
        ):
            return None
        raise
    summaries = listing.get("ModelPackageSummaryList", [])
    if not summaries:
        return None
    return sm.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def model_request(
    settings: Settings, *, name: str, package: Mapping[str, Any], tags: list[dict[str, str]]
) -> dict[str, Any]:
    """CreateModel from the package's inference container (image, artifact, environment), with
    the settings' network isolation and VPC."""
    containers = package.get("InferenceSpecification", {}).get("Containers") or []
    if not containers:
        raise ValueError(
            f"model package {package.get('ModelPackageArn')} has no InferenceSpecification "
            "container: it cannot serve; register it with one"
        )
    source = containers[0]
    container: dict[str, Any] = {
        "Image": source["Image"],
        "Environment": dict(source.get("Environment") or {}),
    }
    if source.get("ModelDataUrl"):
        container["ModelDataUrl"] = source["ModelDataUrl"]
    request: dict[str, Any] = {
        "ModelName": name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": settings.role_arn,
        "Tags": tags,
    }
    if settings.network_isolation:
        request["EnableNetworkIsolation"] = True
    if settings.vpc_config:
        request["VpcConfig"] = settings.vpc_config
    return request
