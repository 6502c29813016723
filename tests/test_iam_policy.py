"""The least IAM policies in aws/iam/ (README, "Running on AWS"): every action is a real
action of its service, and every AWS call the DAGs, the operators and the plugin make is
allowed by the Airflow policy — a call added without its permission fails here, not in a
production run at 2 a.m."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import botocore.session
import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICIES = sorted((ROOT / "aws" / "iam").glob("*.json"))
PLACEHOLDER = re.compile(r"<([a-z-]+)>")

# IAM prefix -> the botocore services whose operations carry its action names
SERVICES = {
    "sagemaker": ("sagemaker", "sagemaker-runtime"),
    "logs": ("logs",),
    "cloudwatch": ("cloudwatch",),
    "application-autoscaling": ("application-autoscaling",),
    "kms": ("kms",),
    "ec2": ("ec2",),
    "ecr": ("ecr",),
}
# permissions that are not operation names (S3 object permissions, PassRole)
PERMISSION_ONLY = {
    "s3": {"GetObject", "PutObject", "DeleteObject", "AbortMultipartUpload", "ListBucket"},
    "iam": {"PassRole"},
}
# S3 client calls -> the permissions they need
S3_CALLS = {
    "get_object": {"GetObject"},
    "head_object": {"GetObject"},
    "download_file": {"GetObject"},
    "download_fileobj": {"GetObject"},
    "put_object": {"PutObject"},
    "upload_file": {"PutObject"},
    "upload_fileobj": {"PutObject"},
    "create_multipart_upload": {"PutObject"},
    "upload_part": {"PutObject"},
    "complete_multipart_upload": {"PutObject"},
    "abort_multipart_upload": {"AbortMultipartUpload"},
    "copy_object": {"GetObject", "PutObject"},
    "delete_object": {"DeleteObject"},
    "delete_objects": {"DeleteObject"},
    "list_objects_v2": {"ListBucket"},
}
# code that runs with the Airflow role; left out: containers/ (inside the jobs: the
# execution role), demo.py and datagen.py (local demo data), cost refresh (a person's own
# credentials, against the Price List API)
SCANNED = ["dags", "plugins", "include/mlops_pipeline"]
NOT_SCANNED = ("containers/", "demo.py", "datagen.py", "cost/refresh.py", "cost/__main__.py")
# a method call, or an operation named in a string (paginators, operation tables)
CALL = re.compile(r"\.([a-z][a-z0-9_]+)\(|\"([a-z][a-z0-9_]+)\"")
# method names that look like AWS operations and are not: FastAPI's app factory, re.search
NOT_AWS = {"create_app", "search"}


@cache
def operations(service: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def allowed(policy: dict) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            value = statement["Action"]
            actions.update([value] if isinstance(value, str) else value)
    return actions


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_each_policy_is_well_formed_and_names_real_actions(path):
    policy = json.loads(path.read_text())
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)), "statement ids must be unique"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and statement["Resource"], statement["Sid"]
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            prefix, name = action.split(":")
            assert "*" not in name, f"{action}: name the action, no wildcards"
            if prefix in PERMISSION_ONLY:
                assert name in PERMISSION_ONLY[prefix], action
            else:
                known = set().union(*(operations(s) for s in SERVICES[prefix]))
                assert name in known, f"{action} is not an action of {prefix}"
    # placeholders are the ones the README tells you to fill in
    assert set(PLACEHOLDER.findall(path.read_text())) <= {
        "region",
        "account-id",
        "bucket",
        "model-package-group",
        "endpoint-prefix",
        "execution-role-arn",
        "kms-key-arn",
    }


def calls_in_code() -> dict[str, set[str]]:
    """snake_case AWS operation name -> files that call it."""
    found: dict[str, set[str]] = {}
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if any(part in relative for part in NOT_SCANNED):
                continue
            for match in CALL.finditer(path.read_text()):
                found.setdefault(match.group(1) or match.group(2), set()).add(relative)
    return found


def needed(call: str) -> set[str] | None:
    """The Airflow-role permissions a client call needs; None when it is not an AWS call."""
    if call in S3_CALLS:
        return {f"s3:{p}" for p in S3_CALLS[call]}
    for prefix, services in SERVICES.items():
        for service in services:
            names = {snake(o): o for o in operations(service)}
            if call in names:
                return {f"{prefix}:{names[call]}"}
    return None


def test_every_aws_call_of_the_dags_is_allowed_by_the_airflow_policy():
    policy = allowed(json.loads((ROOT / "aws" / "iam" / "airflow-policy.json").read_text()))
    calls = calls_in_code()
    checked = 0
    for call, files in sorted(calls.items()):
        permissions = None if call in NOT_AWS else needed(call)
        if permissions is None:
            continue
        checked += 1
        missing = permissions - policy
        assert not missing, f"{call} (in {sorted(files)}) needs {sorted(missing)}"
    # the scan found the calls we know of, so it cannot pass by finding nothing
    for known in (
        "create_processing_job",
        "update_endpoint_weights_and_capacities",
        "get_object",
        "list_transform_jobs",  # named in the cost finder's table, called through a paginator
    ):
        assert known in calls
    assert checked > 30


def test_the_execution_role_can_do_what_the_aws_profile_asks_of_jobs():
    policy = allowed(
        json.loads((ROOT / "aws" / "iam" / "sagemaker-execution-policy.json").read_text())
    )
    # jobs read inputs, write outputs and checkpoints, pull images, log, and use the KMS
    # key and the VPC the aws profile puts on every request
    for action in (
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
        "kms:GenerateDataKey",
        "ec2:CreateNetworkInterface",
    ):
        assert action in policy, action
