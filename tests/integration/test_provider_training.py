"""The unmodified Amazon provider's training operator against local_aws, in dag.test()."""

from __future__ import annotations

import pytest

from tests.algokit import LINEAR_LEARNER_IMAGE, channel, csv_with_label, make_data
from tests.algokit import training_request as algorithm_request
from tests.conftest import unique
from tests.integration.provider_kit import run_dag, xcom
from tests.jobkit import training_request, upload_source

TRAIN = """
import os
print("provider-visible line from the training script", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("m")
print("validation:auc=0.91", flush=True)
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_training_operator(aws_conn, sm, s3, bucket, deferrable, capfd):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

    source = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"train.py": TRAIN})
    s3.put_object(Bucket=bucket, Key="train/x.csv", Body=b"1\n")
    name = unique("op-train")
    config = training_request(
        name,
        bucket,
        source,
        channels={"train": f"s3://{bucket}/train/"},
        metric_definitions=[{"Name": "validation:auc", "Regex": r"validation:auc=([0-9.]+)"}],
    )
    run = run_dag(
        f"t_training_{'deferrable' if deferrable else 'sync'}",
        lambda: SageMakerTrainingOperator(
            task_id="train",
            config=config,
            aws_conn_id=aws_conn,
            wait_for_completion=True,
            print_log=not deferrable,
            check_interval=1,
            deferrable=deferrable,
        ),
    )
    assert run.state == "success"
    job = sm.describe_training_job(TrainingJobName=name)
    assert job["TrainingJobStatus"] == "Completed"
    if not deferrable:
        # print_log streams the job's CloudWatch log into the Airflow task log
        assert "provider-visible line from the training script" in capfd.readouterr().out


def test_failed_training_fails_the_task_with_the_reason(aws_conn, s3, bucket, capfd):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

    source = upload_source(
        s3,
        bucket,
        "code/bad.tar.gz",
        {"train.py": "raise RuntimeError('no fraud labels in input')\n"},
    )
    name = unique("op-train-fail")
    run = run_dag(
        "t_training_fail",
        lambda: SageMakerTrainingOperator(
            task_id="train",
            config=training_request(name, bucket, source),
            aws_conn_id=aws_conn,
            check_interval=1,
            print_log=False,
        ),
    )
    assert run.state == "failed"
    assert "no fraud labels in input" in capfd.readouterr().out


def test_training_operator_runs_a_builtin_algorithm_by_its_image(aws_conn, sm, s3, bucket):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

    for name, (x, y) in {"train": make_data(200, 1), "validation": make_data(60, 2)}.items():
        s3.put_object(Bucket=bucket, Key=f"ll/{name}/data.csv", Body=csv_with_label(x, y))
    name = unique("op-linear-learner")
    config = algorithm_request(
        name,
        LINEAR_LEARNER_IMAGE,
        f"s3://{bucket}/out",
        [channel(c, f"s3://{bucket}/ll/{c}/", "text/csv") for c in ("train", "validation")],
        predictor_type="binary_classifier",
        epochs="5",
    )
    run = run_dag(
        "t_training_builtin",
        lambda: SageMakerTrainingOperator(
            task_id="train", config=config, aws_conn_id=aws_conn, check_interval=1, print_log=False
        ),
    )
    assert run.state == "success"
    described = xcom(run, "train")["Training"]
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{bucket}/out/{name}/output/model.tar.gz"
    )
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert metrics["validation:binary_classification_accuracy"] > 0.85
