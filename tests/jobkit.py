"""Small builders for job requests in tests: code and model tarballs, request dicts, waits."""

from __future__ import annotations

import io
import tarfile
import textwrap
import time
from dataclasses import dataclass
from typing import Any

# the request builders' own ProcessingInputs item, re-exported for the tests
from mlops_pipeline.jobs import s3_input as s3_input
from tests.conftest import ROLE_ARN, SKLEARN_IMAGE, unique

PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"


# -- artifacts in S3 -------------------------------------------------------------------------
def tar_gz(files: dict[str, bytes]) -> bytes:
    """A .tar.gz archive of ``files`` (member name → content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload_source(s3: Any, bucket: str, key: str, files: dict[str, str]) -> str:
    """Pack ``files`` (name → source text) into a sourcedir.tar.gz in S3; return its URI."""
    archive = tar_gz({name: textwrap.dedent(text).encode() for name, text in files.items()})
    s3.put_object(Bucket=bucket, Key=key, Body=archive)
    return f"s3://{bucket}/{key}"


def model_tarball(model: Any) -> bytes:
    """A model.tar.gz holding ``model`` as model.joblib, where the inference scripts'
    model_fn loads it from."""
    import joblib

    raw = io.BytesIO()
    joblib.dump(model, raw)
    return tar_gz({"model.joblib": raw.getvalue()})


def upload_model(s3: Any, bucket: str, key: str, model: Any) -> str:
    """Put ``model_tarball(model)`` at ``key``; return its URI (a ModelDataUrl)."""
    s3.put_object(Bucket=bucket, Key=key, Body=model_tarball(model))
    return f"s3://{bucket}/{key}"


# -- hosting artifacts: models and inference code for endpoints ----------------------------
# The SageMaker scikit-learn container squeezes a one-row CSV to 1-D; real inference scripts
# reshape in predict_fn, and so does this one.
INFERENCE = """
import os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    return model.predict(np.atleast_2d(data))
"""
BROKEN = """
def model_fn(model_dir):
    raise ValueError("weights file is corrupt: retrain the model")
"""


@dataclass
class Artifacts:
    bucket: str
    models: dict[str, Any]  # name -> the fitted model, for in-process predictions
    data: dict[str, str]  # name -> model.tar.gz URI
    code: str
    broken_code: str


def fit(coef: list[float], intercept: float) -> Any:
    """A LinearRegression on 3 features with these coefficients."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    x = np.random.RandomState(0).rand(30, 3)
    return LinearRegression().fit(x, x @ np.array(coef) + intercept)


def upload_artifacts(s3: Any, prefix: str = "endpoints") -> Artifacts:
    """Two fitted models (a, b), the inference script and a broken one, in a new bucket."""
    bucket = unique(prefix)
    s3.create_bucket(Bucket=bucket)
    models = {"a": fit([1, 2, 3], 0.5), "b": fit([-1, 0, 1], 10.0)}
    data = {
        name: upload_model(s3, bucket, f"models/{name}/model.tar.gz", model)
        for name, model in models.items()
    }
    code = upload_source(s3, bucket, "code/sourcedir.tar.gz", {"inference.py": INFERENCE})
    broken = upload_source(s3, bucket, "code/broken.tar.gz", {"inference.py": BROKEN})
    return Artifacts(bucket, models, data, code, broken)


# -- requests --------------------------------------------------------------------------------
def training_request(
    name: str,
    bucket: str,
    source_uri: str,
    *,
    program: str = "train.py",
    hyperparameters: dict[str, str] | None = None,
    channels: dict[str, str] | None = None,
    metric_definitions: list[dict[str, str]] | None = None,
    image: str = SKLEARN_IMAGE,
    **extra: Any,
) -> dict[str, Any]:
    """A CreateTrainingJob request shaped like the SageMaker SDK's script-mode estimators."""
    hps = {
        # the SDK JSON-encodes every hyperparameter value
        "sagemaker_program": f'"{program}"',
        "sagemaker_submit_directory": f'"{source_uri}"',
        **(hyperparameters or {}),
    }
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions or [],
        },
        "RoleArn": ROLE_ARN,
        "HyperParameters": hps,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    if channels:  # the API wants at least one channel or none at all
        request["InputDataConfig"] = [
            {
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
            for channel, uri in channels.items()
        ]
    request.update(extra)
    return request


def s3_output(name: str, local: str, uri: str, mode: str = "EndOfJob") -> dict[str, Any]:
    """A ProcessingOutputConfig.Outputs item: ``local`` uploaded to ``uri``."""
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": mode},
    }


def processing_request(
    name: str,
    *,
    code_uri: str | None = None,
    script: str = "prep.py",
    arguments: list[str] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    image: str = SKLEARN_IMAGE,
    **extra: Any,
) -> dict[str, Any]:
    """A CreateProcessingJob request as the SDK's ScriptProcessor.run(code=...) builds it:
    the code is one more input, under /opt/ml/processing/input/code."""
    all_inputs = list(inputs or [])
    if code_uri:
        all_inputs.append(s3_input("code", code_uri, PROCESSING_CODE_DIR))
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", f"{PROCESSING_CODE_DIR}/{script}"],
        },
        "RoleArn": ROLE_ARN,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    if arguments:
        request["AppSpecification"]["ContainerArguments"] = arguments
    if all_inputs:
        request["ProcessingInputs"] = all_inputs
    if outputs:
        request["ProcessingOutputConfig"] = {"Outputs": outputs}
    request.update(extra)
    return request


def model_request(
    name: str,
    model_data: str,
    source_uri: str,
    *,
    image: str = SKLEARN_IMAGE,
    program: str = "inference.py",
    **container: Any,
) -> dict[str, Any]:
    """A CreateModel request as the SDK's framework models (SKLearnModel, XGBoostModel with
    an entry_point) build it; ``container`` overrides PrimaryContainer members."""
    return {
        "ModelName": name,
        "PrimaryContainer": {
            "Image": image,
            "ModelDataUrl": model_data,
            "Environment": {
                "SAGEMAKER_PROGRAM": program,
                "SAGEMAKER_SUBMIT_DIRECTORY": source_uri,
            },
            **container,
        },
        "ExecutionRoleArn": ROLE_ARN,
    }


def endpoint_config_request(name: str, variants: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """A CreateEndpointConfig request; variants: variant name -> (model name, initial weight),
    each on one ml.m5.large instance."""
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, (model, weight) in variants.items()
        ],
    }


def ensure_execution_role(iam: Any) -> None:
    """ROLE_ARN exists in the account, trusted by SageMaker, as on AWS: the SageMaker SDK
    checks the role (IAM SimulatePrincipalPolicy) before it starts a job."""
    import json

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


# -- waits -----------------------------------------------------------------------------------
def wait_until_training(sm: Any, name: str, timeout: float = 60) -> None:
    """Return once the training job's script runs (SecondaryStatus Training); bounded."""
    deadline = time.monotonic() + timeout
    while sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline, f"training job {name} never reached Training"
        time.sleep(0.1)


TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"


def log_lines(logs: Any, group: str, job: str) -> list[str]:
    """Every line a job logged to CloudWatch Logs, its streams (one per attempt) in order."""
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    lines: list[str] = []
    for stream in sorted(streams["logStreams"], key=lambda s: s["creationTime"]):
        events = logs.get_log_events(
            logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
        )["events"]
        lines.extend(e["message"] for e in events)
    return lines
