"""The built-in algorithms' tests share one small dataset and one request builder."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import numpy as np

from tests.conftest import ROLE_ARN

REGISTRY = "382416733822.dkr.ecr.us-east-1.amazonaws.com"  # k-NN's, Linear Learner's in us-east-1
KNN_IMAGE = f"{REGISTRY}/knn:1"
LINEAR_LEARNER_IMAGE = f"{REGISTRY}/linear-learner:1"
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"


def make_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four features, a binary label that the first two nearly separate."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=rows) > 0).astype(np.float32)
    return x, y


def csv_with_label(x: np.ndarray, y: np.ndarray) -> bytes:
    return "".join(
        f"{int(label)}," + ",".join(repr(float(v)) for v in row) + "\n"
        for row, label in zip(x, y, strict=True)
    ).encode()


def csv_rows(x: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in x)


def recordio(x: np.ndarray, y: np.ndarray | None = None) -> bytes:
    """Dense RecordIO-protobuf records, written by the SageMaker training toolkit's writer
    (the SageMaker SDK v3's own is a stub)."""
    from sagemaker_training.recordio import _write_numpy_to_dense_tensor

    buffer = io.BytesIO()
    _write_numpy_to_dense_tensor(buffer, x, y)
    return buffer.getvalue()


def read_recordio_labels(blob: bytes) -> list[dict[str, list[float]]]:
    """Each response record's label map, as the SDK's RecordDeserializer would give it."""
    from sagemaker_training.record_pb2 import Record
    from sagemaker_training.recordio import _read_recordio

    found = []
    for raw in _read_recordio(io.BytesIO(blob)):
        record = Record()
        record.ParseFromString(raw)
        found.append({k: list(v.float32_tensor.values) for k, v in record.label.items()})
    return found


def channel(name: str, uri: str, content_type: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": content_type,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
    }


def training_request(
    name: str, image: str, output: str, channels: list[dict[str, Any]], **hps: str
) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "HyperParameters": hps,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def tar_members(s3: Any, artifact: str) -> dict[str, bytes]:
    bucket, key = artifact.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
