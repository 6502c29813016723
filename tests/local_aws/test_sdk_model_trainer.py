"""The SageMaker SDK v3's ModelTrainer, unchanged, pointed at local_aws by environment only.

With ``SourceCode`` the SDK runs its own driver (``/bin/bash -c ... sm_train.sh`` under
/opt/ml/input/data/sm_drivers, hard-coding /opt/ml paths) as the ContainerEntrypoint; with
a built-in algorithm's image (``image_uris.retrieve("knn", ...)``) and no source code, the
algorithm trains. (SDK v3 has no ``Estimator``: ModelTrainer is its training interface.)
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.algokit import csv_with_label, make_data, tar_members
from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, unique
from tests.jobkit import ensure_execution_role, log_lines

TRAIN = """
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
args = parser.parse_args()
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().split()
print(f"train_loss={1.0 / len(rows):.4f}", flush=True)
with open("/opt/ml/model/model.json", "w") as fh:
    json.dump({"alpha": args.alpha, "rows": len(rows)}, fh)
"""


@pytest.fixture
def sdk_environment(local_aws, tmp_path, monkeypatch) -> str:
    """What a user sets to run SDK code against local_aws: the endpoint (the session's
    AWS_ENDPOINT_URL), and the SDK's default bucket in its config file, since the SDK asks
    STS for the account at a hard-coded AWS address to name that bucket."""
    bucket = unique("sdk-default")
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n  PythonSDK:\n    Modules:\n      Session:\n"
        f"        DefaultS3Bucket: {bucket}\n"
    )
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    ensure_execution_role(local_aws.client("iam"))
    return bucket


def test_model_trainer_with_source_code_runs_the_sdks_own_driver(
    sdk_environment, s3, logs, bucket, tmp_path: Path
):
    from sagemaker.core.training.configs import Compute, InputData, SourceCode
    from sagemaker.train import ModelTrainer

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    s3.put_object(Bucket=bucket, Key="mt/train/data.csv", Body=b"1\n2\n3\n4\n")
    trainer = ModelTrainer(
        training_image=SKLEARN_IMAGE,
        source_code=SourceCode(source_dir=str(source), entry_script="train.py"),
        role=ROLE_ARN,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        hyperparameters={"alpha": 0.5},
        base_job_name=unique("mt"),
    )
    trainer.train(
        input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/mt/train/")],
        wait=True,
        logs=False,
    )
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    assert job.algorithm_specification.container_entrypoint == ["/bin/bash"]

    artifact = job.model_artifacts.s3_model_artifacts
    assert artifact.startswith(f"s3://{sdk_environment}/")
    out_bucket, key = artifact.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=out_bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model.json")
        assert member is not None
        assert json.load(member) == {"alpha": 0.5, "rows": 4}
    logged = log_lines(logs, "/aws/sagemaker/TrainingJobs", job.training_job_name)
    assert any("Running Basic Script driver" in line for line in logged), logged
    assert any("train_loss=0.2500" in line for line in logged), logged


@pytest.mark.parametrize(
    "algorithm, hyperparameters, metric",
    [
        ("knn", {"feature_dim": 4, "k": 5, "predictor_type": "classifier", "sample_size": 500}, "test:accuracy"),
        ("linear-learner", {"predictor_type": "binary_classifier", "epochs": 5}, "test:binary_classification_accuracy"),
    ],
)  # fmt: skip
def test_model_trainer_with_a_builtin_algorithms_image_and_no_script(
    sdk_environment, local_aws, s3, bucket, algorithm, hyperparameters, metric
):
    from sagemaker.core import image_uris
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train import ModelTrainer

    for name, (x, y) in {"train": make_data(200, 1), "test": make_data(60, 2)}.items():
        s3.put_object(Bucket=bucket, Key=f"algo/{name}/data.csv", Body=csv_with_label(x, y))
    trainer = ModelTrainer(
        training_image=image_uris.retrieve(algorithm, local_aws.region, "1"),
        role=ROLE_ARN,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        hyperparameters=hyperparameters,
        base_job_name=unique(algorithm),
    )
    trainer.train(
        input_data_config=[
            InputData(
                channel_name=name,
                data_source=f"s3://{bucket}/algo/{name}/",
                content_type="text/csv",
            )
            for name in ("train", "test")
        ],
        wait=True,
        logs=False,
    )
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    members = list(tar_members(s3, job.model_artifacts.s3_model_artifacts))
    assert members == ["model_algo-1"]
    # the algorithm's own metric, with no MetricDefinitions given
    final = {m.metric_name: m.value for m in job.final_metric_data_list}
    assert final[metric] > 0.85
