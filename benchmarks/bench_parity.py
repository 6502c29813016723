"""Parity features' own overhead: a built-in XGBoost training job beyond the algorithm's
time, and SageMaker Pipelines' scheduling per step."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from typing import Any

from benchmarks.harness import Row

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
ROWS, ROUNDS, STEPS = 20_000, 50, 10


def _wait(describe: Any, key: str) -> dict[str, Any]:
    while True:
        found = describe()
        if found[key] not in ("InProgress", "Executing", "Stopping"):
            return found
        time.sleep(0.02)


def builtin_xgboost(aws: Any, repeats: int = 3) -> Row:
    import numpy as np
    import xgboost as xgb

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    bucket = f"bench-xgb-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 10)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=ROWS) > 0).astype(np.float32)
    body = "\n".join(
        f"{int(label)}," + ",".join(f"{v:.6f}" for v in row)
        for row, label in zip(x, y, strict=True)
    )
    s3.put_object(Bucket=bucket, Key="train/data.csv", Body=body.encode())
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2}

    totals, alone = [], []
    for i in range(repeats):
        name = f"bench-xgb-{uuid.uuid4().hex[:6]}-{i}"
        started = time.perf_counter()
        sm.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            RoleArn=ROLE,
            HyperParameters={**{k: str(v) for k, v in params.items()}, "num_round": str(ROUNDS)},
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "ContentType": "text/csv",
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}
                    },
                }
            ],
            OutputDataConfig={"S3OutputPath": f"s3://{bucket}/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 600},
        )
        job = _wait(lambda n=name: sm.describe_training_job(TrainingJobName=n), "TrainingJobStatus")
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        totals.append(time.perf_counter() - started)
        # the algorithm's own time: the same rounds on the same rows, in this process
        started = time.perf_counter()
        xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=ROUNDS)
        alone.append(time.perf_counter() - started)
    overhead = statistics.median(totals) - statistics.median(alone)
    return Row(
        f"built-in XGBoost job overhead ({ROWS:,} rows, {ROUNDS} rounds)",
        overhead,
        "s",
        baseline=statistics.median(alone),
        baseline_name="xgboost.train in-process",
        target="<= 1 s beyond the algorithm",
        ok=overhead <= 1.0,
    )


def pipeline_scheduling(aws: Any) -> Row:
    sm = aws.client("sagemaker")
    steps = [
        {
            "Name": f"Step{i}",
            "Type": "Condition",
            "DependsOn": [f"Step{i - 1}"] if i else [],
            "Arguments": {
                "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
                "IfSteps": [],
                "ElseSteps": [],
            },
        }
        for i in range(STEPS)
    ]
    name = f"bench-pipeline-{uuid.uuid4().hex[:6]}"
    sm.create_pipeline(
        PipelineName=name,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": steps}),
        RoleArn=ROLE,
    )
    started = time.perf_counter()
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    done = _wait(
        lambda: sm.describe_pipeline_execution(PipelineExecutionArn=arn), "PipelineExecutionStatus"
    )
    per_step = (time.perf_counter() - started) / STEPS
    assert done["PipelineExecutionStatus"] == "Succeeded", done
    return Row(
        f"pipeline scheduling per step ({STEPS} no-op steps in a chain)",
        per_step,
        "s",
        target="<= 0.3 s per step",
        ok=per_step <= 0.3,
    )


def run(aws: Any) -> list[Row]:
    return [builtin_xgboost(aws), pipeline_scheduling(aws)]
