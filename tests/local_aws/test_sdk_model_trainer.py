"""The SageMaker SDK v3's ModelTrainer, unchanged, pointed at local_aws by environment only.

With ``SourceCode`` the SDK runs its own driver (``/bin/bash -c ... sm_train.sh`` under
/opt/ml/input/data/sm_drivers, hard-coding /opt/ml paths) as the ContainerEntrypoint.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, unique
from tests.jobkit import log_lines

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
    # the execution role exists in the account, trusted by SageMaker, as on AWS
    iam = local_aws.client("iam")
    role = ROLE_ARN.rsplit("/", 1)[1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    if role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
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
