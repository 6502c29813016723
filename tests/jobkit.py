"""Small builders for job requests in tests: code tarballs and request dicts."""

from __future__ import annotations

import io
import tarfile
import textwrap
from typing import Any

from tests.conftest import ROLE_ARN, SKLEARN_IMAGE


def upload_source(s3: Any, bucket: str, key: str, files: dict[str, str]) -> str:
    """Pack ``files`` (name → source text) into a sourcedir.tar.gz in S3; return its URI."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return f"s3://{bucket}/{key}"


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
