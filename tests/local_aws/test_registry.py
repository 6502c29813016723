"""The Model Registry through real boto3: groups, versions, approval, metadata, errors."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws.sagemaker import registry
from local_aws.sagemaker.backend import Backend
from tests.conftest import SKLEARN_IMAGE, unique

ACCOUNT_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"


def inference_spec(model_url: str = "s3://models/model.tar.gz") -> dict[str, Any]:
    return {
        "Containers": [{"Image": SKLEARN_IMAGE, "ModelDataUrl": model_url}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
    }


def new_group(sm, prefix: str = "Fraud") -> str:
    name = unique(prefix)
    sm.create_model_package_group(
        ModelPackageGroupName=name, ModelPackageGroupDescription="fraud classifiers"
    )
    return name


def register(sm, group: str, **extra: Any) -> str:
    return sm.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=inference_spec(), **extra
    )["ModelPackageArn"]


def error_of(call, **kwargs) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


def test_group_with_three_versions(sm):
    group = new_group(sm)
    described = sm.describe_model_package_group(ModelPackageGroupName=group)
    assert described["ModelPackageGroupName"] == group
    assert described["ModelPackageGroupArn"] == (
        f"{ACCOUNT_PREFIX}:model-package-group/{group.lower()}"
    )
    assert described["ModelPackageGroupDescription"] == "fraud classifiers"
    assert described["ModelPackageGroupStatus"] == "Completed"
    # the ARN works wherever the name does
    assert (
        sm.describe_model_package_group(ModelPackageGroupName=described["ModelPackageGroupArn"])[
            "ModelPackageGroupName"
        ]
        == group
    )

    arns = [register(sm, group, ModelPackageDescription=f"model {i}") for i in (1, 2, 3)]
    assert arns == [f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/{v}" for v in (1, 2, 3)]

    latest_first = sm.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in latest_first] == [3, 2, 1]
    assert [s["ModelPackageArn"] for s in latest_first] == arns[::-1]
    assert all(s["ModelPackageGroupName"] == group for s in latest_first)
    assert all("ModelPackageName" not in s for s in latest_first)  # versions have no own name
    # SortOrder defaults to Ascending for this API
    default = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in default] == [1, 2, 3]

    page = sm.list_model_packages(ModelPackageGroupName=group, SortOrder="Descending", MaxResults=2)
    assert [s["ModelPackageVersion"] for s in page["ModelPackageSummaryList"]] == [3, 2]
    rest = sm.list_model_packages(
        ModelPackageGroupName=group, SortOrder="Descending", NextToken=page["NextToken"]
    )
    assert [s["ModelPackageVersion"] for s in rest["ModelPackageSummaryList"]] == [1]
    assert "NextToken" not in rest

    # by ARN, or by "group/version"; a versioned package is named after its group
    second = sm.describe_model_package(ModelPackageName=arns[1])
    assert sm.describe_model_package(ModelPackageName=f"{group}/2")["ModelPackageArn"] == arns[1]
    assert second["ModelPackageName"] == group
    assert second["ModelPackageGroupName"] == group
    assert second["ModelPackageVersion"] == 2
    assert second["ModelPackageDescription"] == "model 2"


def test_describe_echoes_the_create_request(sm):
    group = new_group(sm)
    metrics = {
        "ModelQuality": {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": "s3://reports/evaluation.json",
            }
        }
    }
    baselines = {
        "ModelQuality": {
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": "s3://reports/constraints.json",
            }
        }
    }
    arn = register(
        sm,
        group,
        ModelMetrics=metrics,
        DriftCheckBaselines=baselines,
        MetadataProperties={"GeneratedBy": "model_build/manual__2026-01-01", "ProjectId": "p1"},
        CustomerMetadataProperties={"auc": "0.91", "training_job": "train-1"},
        Domain="MACHINE_LEARNING",
        Task="CLASSIFICATION",
        SamplePayloadUrl="s3://reports/payload.tar.gz",
        SourceUri="arn:aws:sagemaker:us-east-1:123456789012:training-job/train-1",
    )
    d = sm.describe_model_package(ModelPackageName=arn)
    assert d["InferenceSpecification"] == inference_spec()
    assert d["ModelMetrics"] == metrics
    assert d["DriftCheckBaselines"] == baselines
    assert d["MetadataProperties"] == {
        "GeneratedBy": "model_build/manual__2026-01-01",
        "ProjectId": "p1",
    }
    assert d["CustomerMetadataProperties"] == {"auc": "0.91", "training_job": "train-1"}
    assert (d["Domain"], d["Task"]) == ("MACHINE_LEARNING", "CLASSIFICATION")
    assert d["SamplePayloadUrl"] == "s3://reports/payload.tar.gz"
    assert d["SourceUri"].endswith(":training-job/train-1")
    # what SageMaker adds
    assert d["ModelApprovalStatus"] == "PendingManualApproval"
    assert d["ModelPackageStatus"] == "Completed"
    assert d["ModelPackageStatusDetails"] == {"ValidationStatuses": [], "ImageScanStatuses": []}
    assert d["CertifyForMarketplace"] is False
    assert d["CreatedBy"]["IamIdentity"]["Arn"].startswith("arn:aws:sts::123456789012:")
    assert "ApprovalDescription" not in d
    assert "ClientToken" not in d and "Tags" not in d


def test_approval_flow_and_filter(sm):
    group = new_group(sm)
    first, second, third = (register(sm, group) for _ in range(3))
    before = sm.describe_model_package(ModelPackageName=second)
    assert before["ModelApprovalStatus"] == "PendingManualApproval"
    time.sleep(0.01)

    sm.update_model_package(
        ModelPackageArn=second,
        ModelApprovalStatus="Approved",
        ApprovalDescription="AUC 0.91 beats 0.88; approved by data-eng",
    )
    sm.update_model_package(ModelPackageArn=third, ModelApprovalStatus="Rejected")

    after = sm.describe_model_package(ModelPackageName=second)
    assert after["ModelApprovalStatus"] == "Approved"
    assert after["ApprovalDescription"] == "AUC 0.91 beats 0.88; approved by data-eng"
    assert after["LastModifiedTime"] > before["LastModifiedTime"]
    assert after["LastModifiedTime"] > after["CreationTime"]
    assert "IamIdentity" in after["LastModifiedBy"]
    assert after["InferenceSpecification"] == before["InferenceSpecification"]  # untouched

    approved = sm.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
    )["ModelPackageSummaryList"]
    assert [s["ModelPackageArn"] for s in approved] == [second]
    assert approved[0]["ModelApprovalStatus"] == "Approved"
    pending = sm.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageSummaryList"]
    assert [s["ModelPackageArn"] for s in pending] == [first]

    # the model_deploy rollback case: approve again after a rejection
    sm.update_model_package(ModelPackageArn=third, ModelApprovalStatus="Approved")
    latest = sm.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in latest] == [3, 2]


def test_customer_metadata_update_and_remove(sm):
    group = new_group(sm)
    arn = register(sm, group, CustomerMetadataProperties={"auc": "0.91", "owner": "ml-team"})

    sm.update_model_package(
        ModelPackageArn=arn,
        CustomerMetadataProperties={"auc": "0.93", "canary": "passed"},
        CustomerMetadataPropertiesToRemove=["owner"],
    )
    props = sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert props == {"auc": "0.93", "canary": "passed"}

    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataPropertiesToRemove=["auc", "x"])
    props = sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert props == {"canary": "passed"}

    err = error_of(
        sm.update_model_package,
        ModelPackageArn=arn,
        CustomerMetadataProperties={"canary": "failed"},
        CustomerMetadataPropertiesToRemove=["canary"],
    )
    assert err["Code"] == "ValidationException"
    assert "canary" in err["Message"]
    # the refused update changed nothing
    props = sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert props == {"canary": "passed"}


def test_errors_in_sagemakers_words(sm):
    group = new_group(sm)
    group_arn = f"{ACCOUNT_PREFIX}:model-package-group/{group.lower()}"

    err = error_of(sm.create_model_package_group, ModelPackageGroupName=group)
    assert err["Code"] == "ValidationException"
    # the Amazon provider's hook recognises an existing group by this prefix
    assert err["Message"].startswith("Model Package Group already exists")
    assert group_arn in err["Message"]

    missing = unique("NoSuchGroup")
    err = error_of(
        sm.create_model_package,
        ModelPackageGroupName=missing,
        InferenceSpecification=inference_spec(),
    )
    assert err["Code"] == "ValidationException"
    assert missing.lower() in err["Message"] and "does not exist" in err["Message"]

    err = error_of(sm.describe_model_package_group, ModelPackageGroupName=missing)
    assert err == {
        "Code": "ValidationException",
        "Message": f"ModelPackageGroup {ACCOUNT_PREFIX}:model-package-group/{missing.lower()} "
        "does not exist.",
    }
    no_version = f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/7"
    err = error_of(sm.describe_model_package, ModelPackageName=no_version)
    assert err == {
        "Code": "ValidationException",
        "Message": f"ModelPackage {no_version} does not exist.",
    }

    err = error_of(
        sm.create_model_package,
        ModelPackageGroupName=group,
        ModelPackageName="also-a-name",
        InferenceSpecification=inference_spec(),
    )
    assert err["Code"] == "ValidationException"
    assert "Both ModelPackageName and ModelPackageGroupName" in err["Message"]
    err = error_of(sm.create_model_package, InferenceSpecification=inference_spec())
    assert err["Code"] == "ValidationException" and "ModelPackageGroupName" in err["Message"]
    err = error_of(
        sm.create_model_package,
        ModelPackageGroupName=group,
        InferenceSpecification=inference_spec(),
        Tags=[{"Key": "dag", "Value": "model_build"}],
    )
    assert err["Code"] == "ValidationException"
    assert "Tags are not supported in Model Package versions" in err["Message"]

    arn = register(sm, group)
    err = error_of(sm.update_model_package, ModelPackageArn=arn, ModelApprovalStatus="Aproved")
    assert err["Code"] == "ValidationException"
    assert "modelApprovalStatus" in err["Message"] and "Approved" in err["Message"]

    # a group with versions cannot go; once they are deleted it can
    err = error_of(sm.delete_model_package_group, ModelPackageGroupName=group)
    assert err["Code"] == "ConflictException"
    assert group_arn in err["Message"] and "DeleteModelPackage" in err["Message"]
    sm.delete_model_package(ModelPackageName=arn)
    err = error_of(sm.describe_model_package, ModelPackageName=arn)
    assert err["Message"] == f"ModelPackage {arn} does not exist."
    err = error_of(sm.delete_model_package, ModelPackageName=arn)
    assert err["Code"] == "ValidationException"
    sm.delete_model_package_group(ModelPackageGroupName=group)
    err = error_of(sm.describe_model_package_group, ModelPackageGroupName=group)
    assert err["Message"].endswith("does not exist.")


def test_versions_are_never_reused(sm):
    group = new_group(sm)
    register(sm, group)
    second = register(sm, group)
    sm.delete_model_package(ModelPackageName=second)
    assert register(sm, group).endswith(f"/{group.lower()}/3")
    versions = [
        s["ModelPackageVersion"]
        for s in sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    ]
    assert versions == [1, 3]


def test_concurrent_registrations_get_consecutive_versions(local_aws, sm):
    group = new_group(sm)
    arns: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        client = local_aws.client("sagemaker")  # one client per thread, like separate tasks
        try:
            for _ in range(3):
                arn = register(client, group)
                with lock:
                    arns.append(arn)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    versions = sorted(int(arn.rsplit("/", 1)[1]) for arn in arns)
    assert versions == list(range(1, 19))
    listed = sm.list_model_packages(ModelPackageGroupName=group, SortOrder="Descending")
    assert [s["ModelPackageVersion"] for s in listed["ModelPackageSummaryList"]] == list(
        range(18, 0, -1)
    )


def test_a_retried_create_with_the_same_client_token_is_one_version(sm):
    group = new_group(sm)
    token = unique("token")
    first = register(sm, group, ClientToken=token)
    again = register(sm, group, ClientToken=token)
    assert again == first
    assert len(sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == 1


def test_unversioned_packages(sm):
    name = unique("standalone")
    arn = sm.create_model_package(
        ModelPackageName=name,
        InferenceSpecification=inference_spec(),
        Tags=[{"Key": "team", "Value": "fraud"}],
    )["ModelPackageArn"]
    assert arn == f"{ACCOUNT_PREFIX}:model-package/{name.lower()}"
    d = sm.describe_model_package(ModelPackageName=name)
    assert d["ModelPackageName"] == name and d["ModelPackageArn"] == arn
    assert "ModelPackageGroupName" not in d and "ModelPackageVersion" not in d
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "fraud"}]

    err = error_of(
        sm.create_model_package, ModelPackageName=name, InferenceSpecification=inference_spec()
    )
    assert err["Code"] == "ValidationException" and arn in err["Message"]

    group = new_group(sm, prefix=name)  # its name contains the standalone package's
    register(sm, group)

    def listed(**kwargs: Any) -> set[str]:
        pages = sm.list_model_packages(NameContains=name, **kwargs)["ModelPackageSummaryList"]
        return {s["ModelPackageArn"] for s in pages}

    versioned = f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/1"
    assert listed() == {arn}  # unversioned only, by default
    assert listed(ModelPackageType="Versioned") == {versioned}
    assert listed(ModelPackageType="Both") == {arn, versioned}

    sm.delete_model_package(ModelPackageName=name)
    assert listed(ModelPackageType="Both") == {versioned}
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []


def test_list_groups_filters_and_tags(sm):
    marker = unique("lg")
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    names = [f"{marker}-b", f"{marker}-a", f"{marker}-c"]
    for name in names:
        sm.create_model_package_group(
            ModelPackageGroupName=name, Tags=[{"Key": "project", "Value": marker}]
        )

    def group_names(**kwargs: Any) -> list[str]:
        summaries = sm.list_model_package_groups(NameContains=marker, **kwargs)[
            "ModelPackageGroupSummaryList"
        ]
        return [s["ModelPackageGroupName"] for s in summaries]

    assert group_names() == names  # CreationTime, Ascending
    assert group_names(SortBy="Name") == sorted(names)
    assert group_names(SortBy="Name", SortOrder="Descending") == sorted(names, reverse=True)
    assert group_names(CreationTimeAfter=started) == names
    assert group_names(CreationTimeBefore=started) == []
    assert group_names(CrossAccountFilterOption="CrossAccount") == []

    arn = sm.describe_model_package_group(ModelPackageGroupName=names[0])["ModelPackageGroupArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "project", "Value": marker}]
    sm.delete_model_package_group(ModelPackageGroupName=arn)
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []
    assert group_names() == names[1:]


def test_register_model_version_operator(local_aws, sm):
    """The Amazon provider's operator, unmodified; it needs no Airflow DB to execute."""
    from airflow.providers.amazon.aws.operators.sagemaker import (
        ApprovalStatus,
        SageMakerRegisterModelVersionOperator,
    )

    group = unique("OpGroup")

    def operator(**kwargs: Any) -> SageMakerRegisterModelVersionOperator:
        return SageMakerRegisterModelVersionOperator(
            task_id="register",
            image_uri=SKLEARN_IMAGE,
            model_url="s3://models/model.tar.gz",
            package_group_name=group,
            package_desc="nightly fraud model",
            aws_conn_id=None,  # boto3 finds local_aws through AWS_ENDPOINT_URL
            **kwargs,
        )

    first = operator().execute(context={})
    # the second run finds the group ("already exists" is not an error) and adds version 2
    second = operator(
        model_approval=ApprovalStatus.APPROVED,
        extras={"CustomerMetadataProperties": {"run_id": "manual__2"}},
    ).execute(context={})
    assert first == f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/1"
    assert second == f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/2"

    described = sm.describe_model_package_group(ModelPackageGroupName=group)
    assert described["ModelPackageGroupDescription"] == "nightly fraud model"  # package_desc
    v1 = sm.describe_model_package(ModelPackageName=first)
    v2 = sm.describe_model_package(ModelPackageName=second)
    assert v1["ModelApprovalStatus"] == "PendingManualApproval"
    assert v2["ModelApprovalStatus"] == "Approved"
    assert v2["CustomerMetadataProperties"] == {"run_id": "manual__2"}
    assert v2["InferenceSpecification"]["Containers"] == [
        {"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://models/model.tar.gz"}
    ]

    # A failed registration rolls back the group only if this run created it.
    bad = {"Tags": [{"Key": "k", "Value": "v"}]}  # refused on versioned packages
    with pytest.raises(ClientError, match="Tags are not supported"):
        operator(extras=bad).execute(context={})
    assert len(sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == 2
    fresh = unique("OpRollback")
    with pytest.raises(ClientError, match="Tags are not supported"):
        SageMakerRegisterModelVersionOperator(
            task_id="register",
            image_uri=SKLEARN_IMAGE,
            model_url="s3://models/model.tar.gz",
            package_group_name=fresh,
            aws_conn_id=None,
            extras=bad,
        ).execute(context={})
    err = error_of(sm.describe_model_package_group, ModelPackageGroupName=fresh)
    assert err["Message"].endswith("does not exist.")


def test_registry_survives_a_restart(tmp_path):
    """Records and the version counter reload from the data dir into a new Backend."""
    url = "http://127.0.0.1:1"  # never contacted: the registry makes no AWS calls
    before = Backend(tmp_path, url)
    registry.create_model_package_group(before, {"ModelPackageGroupName": "Persisted"})
    arns = [
        registry.create_model_package(
            before,
            {
                "ModelPackageGroupName": "Persisted",
                "InferenceSpecification": inference_spec(),
                "CustomerMetadataProperties": {"auc": "0.9"},
            },
        )["ModelPackageArn"]
        for _ in range(2)
    ]
    registry.update_model_package(
        before,
        {
            "ModelPackageArn": arns[1],
            "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "ok",
        },
    )
    registry.delete_model_package(before, {"ModelPackageName": arns[0]})
    approved = registry.describe_model_package(before, {"ModelPackageName": arns[1]})

    after = Backend(tmp_path, url)
    assert registry.describe_model_package(after, {"ModelPackageName": arns[1]}) == approved
    assert registry.describe_model_package_group(after, {"ModelPackageGroupName": "persisted"})[
        "ModelPackageGroupArn"
    ].endswith(":model-package-group/persisted")
    with pytest.raises(Exception, match="does not exist"):
        registry.describe_model_package(after, {"ModelPackageName": arns[0]})
    # the counter came back too: no version number is handed out twice
    third = registry.create_model_package(
        after, {"ModelPackageGroupName": "Persisted", "InferenceSpecification": inference_spec()}
    )["ModelPackageArn"]
    assert third.endswith(":model-package/persisted/3")
