"""The built-in XGBoost algorithm (the XGBoost image, no script): training, hosting, batch
transform and tuning through boto3, under the algorithm's documented contract."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from tests.algokit import XGBOOST_IMAGE, csv_with_label, make_data
from tests.conftest import ROLE_ARN, unique, wait_for
from tests.jobkit import endpoint_config_request

# the model server parses CSV as float32 before predict: in-process scores use the same
# values, and are compared to a relative 1e-5 (float32 scores printed and parsed back)
TOLERANCE = 1e-5


def training_request(name: str, bucket: str, **hps: str) -> dict[str, Any]:
    channels = {"train": f"s3://{bucket}/xgb/train/", "validation": f"s3://{bucket}/xgb/valid/"}
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "HyperParameters": hps,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/xgb/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


@pytest.fixture(scope="module")
def data(s3) -> dict[str, Any]:
    bucket = unique("xgb")
    s3.create_bucket(Bucket=bucket)
    train, valid = make_data(400, 1), make_data(200, 2)
    s3.put_object(Bucket=bucket, Key="xgb/train/part-0.csv", Body=csv_with_label(*train))
    s3.put_object(Bucket=bucket, Key="xgb/valid/part-0.csv", Body=csv_with_label(*valid))
    return {"bucket": bucket, "valid": valid}


@pytest.fixture(scope="module")
def trained(sm, s3, data) -> dict[str, Any]:
    name = unique("xgb-train")
    sm.create_training_job(
        **training_request(
            name,
            data["bucket"],
            objective="binary:logistic",
            num_round="12",
            max_depth="3",
            eta="0.3",
            eval_metric="auc",
        )
    )
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


def booster_from(s3, artifact: str) -> Any:
    import xgboost as xgb

    bucket, key = artifact.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["xgboost-model"]
        member = tar.extractfile("xgboost-model")
        assert member is not None
        booster = xgb.Booster()
        booster.load_model(bytearray(member.read()))
    return booster


def test_training_writes_a_loadable_xgboost_model_and_the_algorithms_metrics(trained, s3, data):
    artifact = trained["ModelArtifacts"]["S3ModelArtifacts"]
    assert (
        artifact
        == f"s3://{data['bucket']}/xgb/output/{trained['TrainingJobName']}/output/model.tar.gz"
    )
    booster = booster_from(s3, artifact)
    metrics = {m["MetricName"]: m["Value"] for m in trained["FinalMetricDataList"]}
    assert set(metrics) == {"train:auc", "validation:auc"}
    # the data are nearly separable: a dozen shallow trees rank them well
    assert metrics["validation:auc"] > 0.9
    import xgboost as xgb

    x, _ = data["valid"]
    scores = booster.predict(xgb.DMatrix(x))
    assert scores.shape == (len(x),) and ((scores >= 0) & (scores <= 1)).all()


def test_endpoint_and_batch_transform_serve_the_algorithms_model(sm, s3, runtime, trained, data):
    import xgboost as xgb

    model = unique("xgb-model")
    sm.create_model(
        ModelName=model,
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"],
        },
        ExecutionRoleArn=ROLE_ARN,
    )
    x, _ = data["valid"]
    expected = booster_from(s3, trained["ModelArtifacts"]["S3ModelArtifacts"]).predict(
        xgb.DMatrix(x[:5])
    )
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in x[:5])

    config = unique("xgb-config")
    sm.create_endpoint_config(**endpoint_config_request(config, {"AllTraffic": (model, 1.0)}))
    endpoint = unique("xgb-endpoint")
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    done = wait_for(lambda: sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus")
    assert done["EndpointStatus"] == "InService", done.get("FailureReason")
    answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")
    # the algorithm's endpoint answers one comma-joined line
    scores = [float(v) for v in answer["Body"].read().decode().split(",")]
    assert scores == pytest.approx(expected.tolist(), rel=TOLERANCE)
    sm.delete_endpoint(EndpointName=endpoint)

    s3.put_object(Bucket=data["bucket"], Key="xgb/batch/rows.csv", Body=body.encode())
    job = unique("xgb-transform")
    sm.create_transform_job(
        TransformJobName=job,
        ModelName=model,
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{data['bucket']}/xgb/batch/",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{data['bucket']}/xgb/scored/{job}/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    described = wait_for(
        lambda: sm.describe_transform_job(TransformJobName=job), "TransformJobStatus"
    )
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    out = s3.get_object(Bucket=data["bucket"], Key=f"xgb/scored/{job}/rows.csv.out")["Body"]
    lines = out.read().decode().splitlines()  # batch transform: one score per line
    assert [float(v) for v in lines] == pytest.approx(expected.tolist(), rel=TOLERANCE)


def test_tuning_on_the_algorithms_metric_needs_no_metric_definitions(sm, data):
    name = unique("xgb-tune")[:32]
    definition = training_request("unused", data["bucket"], objective="binary:logistic")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Grid",
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize",
                "MetricName": "validation:auc",
            },
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["1", "3"]}]
            },
        },
        TrainingJobDefinition={
            "AlgorithmSpecification": definition["AlgorithmSpecification"],
            "RoleArn": ROLE_ARN,
            "StaticHyperParameters": {"objective": "binary:logistic", "num_round": "5"},
            "InputDataConfig": definition["InputDataConfig"],
            "OutputDataConfig": definition["OutputDataConfig"],
            "ResourceConfig": definition["ResourceConfig"],
            "StoppingCondition": definition["StoppingCondition"],
        },
    )
    job = wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
    )
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    best = job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    assert best["MetricName"] == "validation:auc" and 0.5 < best["Value"] <= 1.0


def test_a_missing_num_round_fails_with_a_client_error(sm, data):
    name = unique("xgb-bad")
    sm.create_training_job(**training_request(name, data["bucket"], objective="binary:logistic"))
    job = wait_for(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        "ClientError: Missing required hyperparameter: num_round"
    )
