"""The aws profile's security settings on every request the three DAGs build: KMS on every
volume and output the API takes a key for, the VPC when given, network isolation and
inter-container traffic encryption where the job kind has them. Each request is validated
against botocore's SageMaker model too, so a setting is never put where AWS refuses it."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_pipeline import batch, jobs, registry
from mlops_pipeline.config import load_settings
from mlops_pipeline.deploy import hosting
from mlops_pipeline.quality import request as quality_request
from tests.pipeline.test_jobs import AWS_ENV, requests, validate

KEY = AWS_ENV["MLOPS_KMS_KEY_ID"]
VPC = {
    "Subnets": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
    "SecurityGroupIds": ["sg-0123456789abcdef0"],
}
RUN = jobs.JobRun("batch_inference", "scheduled__2026-03-10T00:00:00+00:00", "transform", "k")


def package(settings) -> dict[str, Any]:
    return {
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:111122223333:model-package/card-fraud/3",
        "ModelPackageGroupName": "card-fraud",
        "ModelPackageVersion": 3,
        "InferenceSpecification": {
            "Containers": [
                {"Image": settings.xgboost_image, "ModelDataUrl": "s3://prod-ml/model.tar.gz"}
            ]
        },
    }


def every_request(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every Create* request of model_build, batch_inference, model_deploy and the
    data-quality gate, as the DAGs build them."""
    settings = load_settings(env)
    built = dict(requests(env))  # model_build's processing and tuning jobs
    built["CreateProcessingJob:quality"] = quality_request.build_request(
        name="dq-transactions-20260310",
        settings=settings,
        input_uri=settings.s3_uri("raw", "transactions", "dt=2026-03-10") + "/",
        run=settings.s3_uri("quality", "runs", "transactions", "x"),
    )
    built["CreateTransformJob"] = batch.transform_request(
        settings,
        RUN,
        name="batch-inference-transform-20260310-abc123",
        model_name="card-fraud-v3-0a1b2c3d",
        model_version="card-fraud/3",
        partition="2026-03-10",
    )
    built["CreateModel:batch"] = registry.model_request(
        settings, name="card-fraud-v3-0a1b2c3d", package=package(settings), tags=[]
    )
    built["CreateModel:deploy"] = hosting.model_request(
        settings, name="card-fraud-v3-x", package=package(settings), tags=[]
    )
    built["CreateEndpointConfig"] = hosting.endpoint_config_request(
        settings,
        name="card-fraud-config-x",
        variants=[("v2", "card-fraud-v2-x", 90, 1), ("v3", "card-fraud-v3-x", 10, 1)],
        tags=[],
    )
    return built


def test_every_request_of_every_dag_is_valid_for_sagemaker_in_both_profiles():
    for env in ({}, AWS_ENV):
        for label, request in every_request(env).items():
            validate(label.split(":")[0], request)


def test_the_aws_profile_encrypts_isolates_and_places_every_job_in_the_vpc():
    built = every_request(AWS_ENV)
    processing = [k for k in built if k.startswith("CreateProcessingJob")]
    assert len(processing) == 3  # preprocess, evaluate, quality
    for label in processing:
        request = built[label]
        assert request["ProcessingOutputConfig"]["KmsKeyId"] == KEY, label
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY, label
        assert request["NetworkConfig"] == {
            "EnableNetworkIsolation": True,
            "VpcConfig": VPC,
            "EnableInterContainerTrafficEncryption": True,
        }, label

    training = built["CreateHyperParameterTuningJob"]["TrainingJobDefinition"]
    assert training["OutputDataConfig"]["KmsKeyId"] == KEY
    assert training["ResourceConfig"]["VolumeKmsKeyId"] == KEY
    assert training["EnableNetworkIsolation"] is True
    assert training["EnableInterContainerTrafficEncryption"] is True
    assert training["VpcConfig"] == VPC

    transform = built["CreateTransformJob"]
    assert transform["TransformOutput"]["KmsKeyId"] == KEY
    assert transform["TransformResources"]["VolumeKmsKeyId"] == KEY

    for label in ("CreateModel:batch", "CreateModel:deploy"):
        # a transform or an endpoint runs in the model's network settings
        assert built[label]["EnableNetworkIsolation"] is True, label
        assert built[label]["VpcConfig"] == VPC, label
    assert built["CreateEndpointConfig"]["KmsKeyId"] == KEY


def test_the_local_profile_sets_none_of_them():
    built = every_request({})
    for label, request in built.items():
        flat = repr(request)
        for field in ("KmsKeyId", "VpcConfig", "EnableNetworkIsolation", "NetworkConfig"):
            assert field not in flat, (label, field)


@pytest.mark.parametrize("missing", ["MLOPS_KMS_KEY_ID", "MLOPS_SUBNETS"])
def test_a_setting_left_out_is_left_out_of_every_request(missing):
    env = {k: v for k, v in AWS_ENV.items() if k != missing}
    if missing == "MLOPS_SUBNETS":
        env.pop("MLOPS_SECURITY_GROUP_IDS")
    field = {"MLOPS_KMS_KEY_ID": "KmsKeyId", "MLOPS_SUBNETS": "VpcConfig"}[missing]
    for label, request in every_request(env).items():
        assert field not in repr(request), label
        # the other settings stay: isolation is independent of the key and the VPC
        if label.startswith(("CreateProcessingJob", "CreateModel:")):
            assert "EnableNetworkIsolation" in repr(request), label


def test_no_credentials_in_dag_files_or_the_package():
    """Credentials come from the aws_default connection (or the role on AWS), never from code:
    no access key ids and no secret assignments in what the scheduler and workers load."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    key_id = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
    secret = re.compile(r"aws_secret_access_key\s*[=:]\s*['\"][^'\"]+['\"]", re.IGNORECASE)
    files = [
        p
        for folder in ("dags", "include/mlops_pipeline", "plugins")
        for p in (root / folder).rglob("*")
        if p.suffix in (".py", ".json", ".yaml", ".yml", ".cfg")
    ]
    assert len(files) > 20
    for path in files:
        text = path.read_text(errors="replace")
        assert not key_id.search(text), path
        assert not secret.search(text), path
