"""The unmodified Amazon provider's SageMakerRegisterModelVersionOperator in dag.test()."""

from __future__ import annotations

from tests.conftest import SKLEARN_IMAGE, unique
from tests.integration.provider_kit import run_dag, states, xcom

ACCOUNT_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"


def test_two_runs_register_versions_1_and_2(aws_conn, sm):
    """The first task creates the group; the second finds it ("already exists" is not an
    error to the provider) and adds version 2. Each task's XCom is its package's ARN."""
    from airflow.providers.amazon.aws.operators.sagemaker import (
        ApprovalStatus,
        SageMakerRegisterModelVersionOperator,
    )

    group = unique("OpFraudModels")

    def register(task_id: str, model_url: str, **kwargs) -> SageMakerRegisterModelVersionOperator:
        return SageMakerRegisterModelVersionOperator(
            task_id=task_id,
            image_uri=SKLEARN_IMAGE,
            model_url=model_url,
            package_group_name=group,
            package_desc="nightly fraud model",
            aws_conn_id="aws_default",
            **kwargs,
        )

    run = run_dag(
        "t_register_versions",
        lambda: register("register_v1", "s3://models/v1/model.tar.gz"),
        lambda: register(
            "register_v2",
            "s3://models/v2/model.tar.gz",
            model_approval=ApprovalStatus.APPROVED,
            extras={
                "CustomerMetadataProperties": {"run_id": "{{ run_id }}"},
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {
                            "ContentType": "application/json",
                            "S3Uri": "s3://models/v2/evaluation.json",
                        }
                    }
                },
            },
        ),
    )
    assert run.state == "success"
    first, second = xcom(run, "register_v1"), xcom(run, "register_v2")
    assert first == f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/1"
    assert second == f"{ACCOUNT_PREFIX}:model-package/{group.lower()}/2"

    described = sm.describe_model_package_group(ModelPackageGroupName=group)
    assert described["ModelPackageGroupStatus"] == "Completed"
    assert described["ModelPackageGroupDescription"] == "nightly fraud model"  # package_desc
    v1 = sm.describe_model_package(ModelPackageName=first)
    v2 = sm.describe_model_package(ModelPackageName=second)
    assert (v1["ModelPackageVersion"], v2["ModelPackageVersion"]) == (1, 2)
    assert v1["ModelApprovalStatus"] == "PendingManualApproval"
    assert v2["ModelApprovalStatus"] == "Approved"
    assert v2["ModelPackageDescription"] == "nightly fraud model"
    assert v2["InferenceSpecification"] == {
        "Containers": [{"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://models/v2/model.tar.gz"}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
    }
    # extras are not templated: the value reaches SageMaker as written
    assert v2["CustomerMetadataProperties"] == {"run_id": "{{ run_id }}"}
    assert v2["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == (
        "s3://models/v2/evaluation.json"
    )
    # what model_deploy looks up: the latest approved version of the group
    latest = sm.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in latest] == [second]


def test_a_refused_version_fails_the_task_and_rolls_back_a_new_group(aws_conn, sm, capfd):
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerRegisterModelVersionOperator,
    )

    group = unique("OpRollback")
    run = run_dag(
        "t_register_refused",
        lambda: SageMakerRegisterModelVersionOperator(
            task_id="register",
            image_uri=SKLEARN_IMAGE,
            model_url="s3://models/v1/model.tar.gz",
            package_group_name=group,
            # a status the API does not know: refused by CreateModelPackage, after the group
            extras={"ModelApprovalStatus": "Accepted"},
            aws_conn_id="aws_default",
        ),
    )
    out = capfd.readouterr().out
    assert states(run) == {"register": "failed"}
    assert "Value 'Accepted' at 'modelApprovalStatus' failed to satisfy constraint" in out
    # the provider deletes the group it created for the refused version
    assert sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"] == []
