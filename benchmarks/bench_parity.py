"""Parity features' own overhead: a built-in XGBoost training job beyond the algorithm's
time, and SageMaker Pipelines' scheduling per step."""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
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


def _algorithm_alone(body: bytes, hyperparameters: dict[str, str]) -> float:
    """The algorithm's own time: its training module run in this process on a local copy of
    the job's /opt/ml (the same CSV parsing, rounds with the per-round train evaluation it
    logs, model save), i.e. the job minus what local_aws adds (API, S3, process, logs)."""
    from local_aws.sagemaker.builtins import xgboost_algorithm

    with tempfile.TemporaryDirectory(prefix="bench-opt-ml-") as base:
        config = Path(base, "input/config")
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        (config / "inputdataconfig.json").write_text(
            json.dumps({"train": {"ContentType": "text/csv"}})
        )
        Path(base, "input/data/train").mkdir(parents=True)
        Path(base, "input/data/train/data.csv").write_bytes(body)
        saved = os.environ.get("SAGEMAKER_BASE_DIR")
        os.environ["SAGEMAKER_BASE_DIR"] = base
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                started = time.perf_counter()
                code = xgboost_algorithm.main()
                elapsed = time.perf_counter() - started
        finally:
            if saved is None:
                os.environ.pop("SAGEMAKER_BASE_DIR", None)
            else:
                os.environ["SAGEMAKER_BASE_DIR"] = saved
    assert code == 0
    return elapsed


def builtin_xgboost(aws: Any, repeats: int = 3) -> Row:
    import numpy as np

    s3, sm = aws.client("s3"), aws.client("sagemaker")
    bucket = f"bench-xgb-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 10)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=ROWS) > 0).astype(np.float32)
    body = "\n".join(
        f"{int(label)}," + ",".join(f"{v:.6f}" for v in row)
        for row, label in zip(x, y, strict=True)
    ).encode()
    s3.put_object(Bucket=bucket, Key="train/data.csv", Body=body)
    hyperparameters = {"objective": "binary:logistic", "max_depth": "4", "eta": "0.2"}
    hyperparameters["num_round"] = str(ROUNDS)
    _algorithm_alone(body, hyperparameters)  # its imports, paid once as the warm trainer does

    totals, alone = [], []
    for i in range(repeats):
        name = f"bench-xgb-{uuid.uuid4().hex[:6]}-{i}"
        started = time.perf_counter()
        sm.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            RoleArn=ROLE,
            HyperParameters=hyperparameters,
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
        alone.append(_algorithm_alone(body, hyperparameters))
    overhead = statistics.median(totals) - statistics.median(alone)
    return Row(
        f"built-in XGBoost job overhead ({ROWS:,} rows, {ROUNDS} rounds)",
        overhead,
        "s",
        baseline=statistics.median(alone),
        baseline_name="the algorithm in-process",
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
