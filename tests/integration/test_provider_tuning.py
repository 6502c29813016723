"""The unmodified Amazon provider's tuning operator and the tuning and training sensors
against local_aws: every child of the search is a real training job."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, unique
from tests.integration.provider_kit import run_dag, states, xcom
from tests.jobkit import training_request, upload_source

# The objective -(alpha - 0.3)**2 makes the best child known in advance.
TRAIN = """
import argparse, os

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.0)
args, _ = parser.parse_known_args()
if args.alpha > 0.9:
    raise ValueError(f"alpha={args.alpha} is outside the supported range")
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as fh:
    fh.write(str(args.alpha))
print(f"objective={-(args.alpha - 0.3) ** 2:.6f}", flush=True)
"""
METRICS = [{"Name": "objective", "Regex": r"objective=(-?[0-9.]+)"}]


@dataclass
class Source:
    bucket: str
    code: str
    train: str


@pytest.fixture(scope="module")
def source(s3) -> Source:
    bucket = unique("provider-tuning")
    s3.create_bucket(Bucket=bucket)
    code = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN})
    s3.put_object(Bucket=bucket, Key="train/part-0.csv", Body=b"1,2\n3,4\n")
    return Source(bucket, code, f"s3://{bucket}/train/")


def tuning_config(name: str, src: Source, alphas: list[str]) -> dict[str, Any]:
    """A Grid search over ``alphas`` with two children at a time, as the SDK's
    HyperparameterTuner builds it (the provider requires InputDataConfig)."""
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Grid",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "objective"},
            "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "CategoricalParameterRanges": [{"Name": "alpha", "Values": alphas}]
            },
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": f'"{src.code}"',
            },
            "AlgorithmSpecification": {
                "TrainingImage": SKLEARN_IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": METRICS,
            },
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": src.train}},
                }
            ],
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": f"s3://{src.bucket}/tuning/{name}"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        },
    }


def tuning_task(task_id: str, config: dict[str, Any], **kwargs: Any) -> Any:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTuningOperator

    kwargs.setdefault("check_interval", 1)
    return SageMakerTuningOperator(
        task_id=task_id, config=copy.deepcopy(config), aws_conn_id="aws_default", **kwargs
    )


def children(sm: Any, name: str) -> list[dict[str, Any]]:
    return sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"
    ]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_tuning_operator_reports_the_best_training_job(
    aws_conn, sm, s3, source, deferrable, capfd, caplog
):
    name = unique("op-tune")
    run = run_dag(
        f"t_tuning_{'deferrable' if deferrable else 'sync'}",
        lambda: tuning_task(
            "tune", tuning_config(name, source, ["0.1", "0.3", "0.6"]), deferrable=deferrable
        ),
    )
    out = capfd.readouterr().out
    assert run.state == "success", out[-3000:]

    job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Completed"] == 3
    best = job["BestTrainingJob"]
    assert best["TunedHyperParameters"] == {"alpha": "0.3"}
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(0.0)
    assert sorted(c["TunedHyperParameters"]["alpha"] for c in children(sm, name)) == [
        "0.1",
        "0.3",
        "0.6",
    ]
    # the best child's model artifact is in S3
    artifact = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])["ModelArtifacts"]
    bucket, key = artifact["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    assert bucket == source.bucket and key.startswith(f"tuning/{name}/")
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0

    result = xcom(run, "tune")["Tuning"]
    assert result["HyperParameterTuningJobName"] == name
    assert result["HyperParameterTuningJobStatus"] == "Completed"
    assert result["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    assert result["BestTrainingJob"]["TunedHyperParameters"] == {"alpha": "0.3"}
    assert f"Creating SageMaker Hyper-Parameter Tuning Job {name}" in out
    if deferrable:  # the tuning operator always defers; dag.test() runs the trigger in line
        assert "[DAG TEST] running trigger in line" in caplog.text
    else:
        assert "current status is Completed" in out  # polled every check_interval
        assert "SageMaker resource completed" in out


def test_tuning_and_training_sensors_wait_for_jobs_started_without_waiting(
    aws_conn, sm, source, capfd
):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
    from airflow.providers.amazon.aws.sensors.sagemaker import (
        SageMakerTrainingSensor,
        SageMakerTuningSensor,
    )

    tuning, training = unique("op-tune-nowait"), unique("op-train-nowait")
    poke = {"mode": "poke", "poke_interval": 1, "timeout": 120, "aws_conn_id": "aws_default"}
    run = run_dag(
        "t_tuning_sensors",
        lambda: tuning_task(
            "tune", tuning_config(tuning, source, ["0.2", "0.3"]), wait_for_completion=False
        ),
        lambda: SageMakerTuningSensor(
            task_id="watch_tuning",
            job_name="{{ ti.xcom_pull(task_ids='tune')['Tuning']['HyperParameterTuningJobName'] }}",
            **poke,
        ),
        lambda: SageMakerTrainingOperator(
            task_id="train",
            config=training_request(
                training,
                source.bucket,
                source.code,
                hyperparameters={"alpha": "0.3"},
                channels={"train": source.train},
                metric_definitions=METRICS,
            ),
            wait_for_completion=False,
            # without waiting, print_log still sleeps one check_interval and prints the log
            check_interval=1,
            aws_conn_id="aws_default",
        ),
        lambda: SageMakerTrainingSensor(
            task_id="watch_training",
            job_name="{{ ti.xcom_pull(task_ids='train')['Training']['TrainingJobName'] }}",
            print_log=False,
            **poke,
        ),
    )
    out = capfd.readouterr().out
    assert run.state == "success", out[-3000:]
    # the operators returned at once, with the job's describe response of that moment
    assert xcom(run, "tune")["Tuning"]["HyperParameterTuningJobName"] == tuning
    assert xcom(run, "train")["Training"]["TrainingJobName"] == training

    job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"alpha": "0.3"}
    trained = sm.describe_training_job(TrainingJobName=training)
    assert trained["TrainingJobStatus"] == "Completed"
    assert trained["FinalMetricDataList"][0]["MetricName"] == "objective"
    assert "job currently Completed" in out  # the sensors' poke log
    assert "Billable seconds:" in out  # the training sensor's


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_search_without_a_successful_child_fails_the_task_with_the_reason(
    aws_conn, sm, source, deferrable, capfd
):
    from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerTuningSensor

    name = unique("op-tune-fail")
    run = run_dag(
        f"t_tuning_fail_{'deferrable' if deferrable else 'sync'}",
        lambda: tuning_task(
            "tune", tuning_config(name, source, ["0.95", "0.99"]), deferrable=deferrable
        ),
        lambda: SageMakerTuningSensor(
            task_id="watch",
            job_name=name,
            mode="poke",
            poke_interval=1,
            timeout=60,
            aws_conn_id="aws_default",
            trigger_rule="all_done",
        ),
    )
    out = capfd.readouterr().out
    assert states(run) == {"tune": "failed", "watch": "failed"}
    job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("No training job succeeded after 2 attempts")
    assert "is outside the supported range" in job["FailureReason"]
    if deferrable:
        assert "Error while running job: {'status': 'failed'" in out
    else:
        assert "SageMaker resource failed because No training job succeeded" in out
    assert "Sagemaker job failed for the following reason: No training job succeeded" in out
    assert out.count("is outside the supported range") >= 2
