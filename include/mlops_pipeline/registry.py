"""The model registry as every DAG reads it: the group's newest Approved package, and the
SageMaker Model that serves a package (batch_inference's transform and model_deploy's
endpoints make the same CreateModel from it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_pipeline.config import Settings


def newest_arn(sm: Any, group: str, status: str) -> str | None:
    """The ARN of the group's newest version with ModelApprovalStatus ``status``; None when
    there is none, or no such group yet (both normal before a first registration)."""
    from botocore.exceptions import ClientError

    try:
        listing = sm.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,
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
    return summaries[0]["ModelPackageArn"] if summaries else None


def newest_approved(sm: Any, group: str) -> dict[str, Any] | None:
    """DescribeModelPackage of the group's newest Approved version, if any."""
    arn = newest_arn(sm, group, "Approved")
    return None if arn is None else sm.describe_model_package(ModelPackageName=arn)


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
