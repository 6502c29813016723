"""The unmodified Amazon provider's transform operator and sensor against local_aws: a real
model server scores the input, and the .out objects land in S3."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from tests.conftest import unique
from tests.integration.provider_kit import run_dag, states, xcom
from tests.jobkit import model_request, upload_model, upload_source

# model_fn only: the container's default input_fn/predict_fn/output_fn do the rest.
INFERENCE = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""
BROKEN = """
def model_fn(model_dir):
    raise ValueError("weights file is corrupt, retrain the model")
"""
ROWS = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0], [2.0, 0.0, -3.5], [10.0, 1.0, 1.0]])


@dataclass
class Setup:
    bucket: str
    model: LinearRegression
    model_data: str
    code: str
    broken_code: str


@pytest.fixture(scope="module")
def setup(s3) -> Setup:
    bucket = unique("provider-transform")
    s3.create_bucket(Bucket=bucket)
    x = np.random.RandomState(0).rand(20, 3)
    model = LinearRegression().fit(x, x @ np.array([1.0, -2.0, 3.0]) + 0.5)
    model_data = upload_model(s3, bucket, "model/model.tar.gz", model)
    csv = "".join(",".join(map(str, row)) + "\n" for row in ROWS)
    s3.put_object(Bucket=bucket, Key="input/2026-01-01/transactions.csv", Body=csv.encode())
    return Setup(
        bucket,
        model,
        model_data,
        upload_source(s3, bucket, "code/sourcedir.tar.gz", {"inference.py": INFERENCE}),
        upload_source(s3, bucket, "code/broken.tar.gz", {"inference.py": BROKEN}),
    )


def transform_config(setup: Setup, job: str, model: str, *, code: str | None = None) -> dict:
    """{"Model": CreateModel request, "Transform": CreateTransformJob request}, as
    batch_inference passes them to the operator."""
    return {
        "Model": model_request(model, setup.model_data, code or setup.code),
        "Transform": {
            "TransformJobName": job,
            "ModelName": model,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": 1,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{setup.bucket}/input/2026-01-01/",
                    }
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": f"s3://{setup.bucket}/scores/{job}/",
                "Accept": "text/csv",
                "AssembleWith": "Line",
            },
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    }


def transform_task(task_id: str, config: dict[str, Any], **kwargs: Any) -> Any:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

    kwargs.setdefault("check_interval", 1)
    return SageMakerTransformOperator(
        task_id=task_id, config=copy.deepcopy(config), aws_conn_id="aws_default", **kwargs
    )


def scores(s3: Any, bucket: str, job: str) -> list[float]:
    key = f"scores/{job}/transactions.csv.out"
    return [float(v) for v in s3.get_object(Bucket=bucket, Key=key)["Body"].read().split()]


def in_process(model: LinearRegression) -> list[float]:
    # the container casts CSV input to float32 before predict
    return model.predict(ROWS.astype(np.float32)).tolist()


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_transform_operator_creates_the_model_and_scores_the_input(
    aws_conn, sm, s3, setup, deferrable, capfd, caplog
):
    job, model = unique("op-transform"), unique("op-tx-model")
    run = run_dag(
        f"t_transform_{'deferrable' if deferrable else 'sync'}",
        lambda: transform_task(
            "transform", transform_config(setup, job, model), deferrable=deferrable
        ),
    )
    out = capfd.readouterr().out
    assert run.state == "success", out[-3000:]

    described = sm.describe_transform_job(TransformJobName=job)
    assert described["TransformJobStatus"] == "Completed"
    assert described["ModelName"] == model
    assert sm.describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"] == (
        setup.model_data
    )
    assert scores(s3, setup.bucket, job) == pytest.approx(in_process(setup.model), rel=1e-5)

    result = xcom(run, "transform")
    assert result["Transform"]["TransformJobName"] == job
    assert result["Transform"]["TransformJobStatus"] == "Completed"
    assert result["Transform"]["TransformOutput"]["S3OutputPath"] == (
        f"s3://{setup.bucket}/scores/{job}/"
    )
    assert result["Model"]["ModelName"] == model
    assert result["Model"]["ModelArn"].endswith(f":model/{model}")
    assert f"Creating SageMaker Model {model} for transform job" in out
    assert f"Creating SageMaker transform Job {job}." in out
    # the operator's extra link to the console
    assert (
        "You can monitor this SageMaker Transform job at https://console.aws.amazon.com/"
        f"sagemaker/home?region=us-east-1#/transform-jobs/{job}" in out
    )
    if deferrable:
        # the job needs its model server first, so the task always deferred
        assert "[DAG TEST] running trigger in line" in caplog.text
        assert f"SageMaker job {job} completed." in out
    else:
        assert "SageMaker resource completed" in out


def test_a_second_run_gets_timestamped_model_and_job_names(aws_conn, sm, s3, setup, capfd):
    """Existing names are found by DescribeModel/DescribeTransformJob's ValidationException;
    the renamed model is the one the renamed job uses."""
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTransformSensor

    job, model = unique("op-transform-again"), unique("op-tx-model-again")
    config = transform_config(setup, job, model)
    run = run_dag(
        "t_transform_existing_names",
        lambda: transform_task("first", config, wait_for_completion=False),
        lambda: SageMakerTransformSensor(
            task_id="wait_first",
            job_name="{{ ti.xcom_pull(task_ids='first')['Transform']['TransformJobName'] }}",
            aws_conn_id="aws_default",
            mode="poke",
            poke_interval=1,
            timeout=120,
        ),
        lambda: transform_task("second", config),
    )
    out = capfd.readouterr().out
    assert run.state == "success", out[-3000:]
    assert "job currently Completed" in out  # the sensor's poke log

    second = xcom(run, "second")
    renamed_job = second["Transform"]["TransformJobName"]
    renamed_model = second["Model"]["ModelName"]
    assert re.fullmatch(rf"{job}-\d{{10}}", renamed_job), renamed_job
    assert re.fullmatch(rf"{model}-\d{{10}}", renamed_model), renamed_model
    assert f"Changed job name to '{renamed_job}' to avoid collision." in out
    assert f"Changed model name to '{renamed_model}' to avoid collision." in out
    described = sm.describe_transform_job(TransformJobName=renamed_job)
    assert described["TransformJobStatus"] == "Completed"
    assert described["ModelName"] == renamed_model
    # S3OutputPath is not renamed: both jobs wrote the same .out, as they would on AWS
    listed = s3.list_objects_v2(Bucket=setup.bucket, Prefix=f"scores/{job}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"scores/{job}/transactions.csv.out"]
    assert scores(s3, setup.bucket, job) == pytest.approx(in_process(setup.model), rel=1e-5)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_model_that_cannot_load_fails_the_task_with_the_reason(
    aws_conn, sm, s3, setup, deferrable, capfd
):
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTransformSensor

    job, model = unique("op-transform-fail"), unique("op-tx-model-broken")
    run = run_dag(
        f"t_transform_fail_{'deferrable' if deferrable else 'sync'}",
        lambda: transform_task(
            "transform",
            transform_config(setup, job, model, code=setup.broken_code),
            deferrable=deferrable,
        ),
        lambda: SageMakerTransformSensor(
            task_id="watch",
            job_name=job,
            aws_conn_id="aws_default",
            mode="poke",
            poke_interval=1,
            timeout=60,
            trigger_rule="all_done",
        ),
    )
    out = capfd.readouterr().out
    assert states(run) == {"transform": "failed", "watch": "failed"}
    described = sm.describe_transform_job(TransformJobName=job)
    assert described["TransformJobStatus"] == "Failed"
    assert "weights file is corrupt, retrain the model" in described["FailureReason"]
    if deferrable:
        assert "Error while running transform job: {'status': 'failed'" in out
    else:
        assert "SageMaker resource failed because" in out
    assert "Sagemaker job failed for the following reason:" in out  # the sensor
    assert out.count("weights file is corrupt, retrain the model") >= 2
    listed = s3.list_objects_v2(Bucket=setup.bucket, Prefix=f"scores/{job}/")
    assert listed["KeyCount"] == 0
