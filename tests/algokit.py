"""The built-in algorithms' tests share one small dataset and one request builder."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_pipeline.config import XGBOOST_IMAGE as XGBOOST_IMAGE
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


@dataclass(frozen=True)
class Case:
    """One built-in algorithm, tuned on its own metric over :func:`make_data`'s data and
    scored in text/csv: what the SDK's and the provider's end-to-end tests share."""

    algorithm: str  # as image_uris.retrieve names it
    version: str
    image: str  # what image_uris.retrieve gives in us-east-1
    hyperparameters: dict[str, Any]
    objective: str
    tuned: tuple[str, list[Any]]  # a Grid over one categorical hyperparameter
    held_out: str  # the second channel, the objective's
    label: Callable[[str], int]  # one row of a text/csv answer as a label
    # the endpoint's text/csv answer as rows (batch transform writes one per line)
    rows: Callable[[str], list[str]] = str.splitlines
    members: list[str] = field(default_factory=lambda: ["model_algo-1"])


CASES = [
    Case(
        "knn", "1", KNN_IMAGE,
        {"feature_dim": 4, "k": 5, "predictor_type": "classifier", "sample_size": 500},
        "test:accuracy", ("k", [1, 9]), "test",
        lambda row: int(float(row)),
    ),
    Case(
        "linear-learner", "1", LINEAR_LEARNER_IMAGE,
        {"predictor_type": "binary_classifier", "epochs": 4},
        "validation:binary_classification_accuracy", ("mini_batch_size", [50, 200]),
        "validation",
        lambda row: int(float(row.split(",")[1])),  # score,predicted_label
    ),
    Case(
        "xgboost", "1.7-1", XGBOOST_IMAGE,
        {"objective": "binary:logistic", "num_round": 8, "eval_metric": "auc"},
        "validation:auc", ("max_depth", [2, 4]), "validation",
        lambda row: int(float(row) >= 0.5),
        # the XGBoost container answers an endpoint's CSV request on one line, comma-separated
        rows=lambda body: body.split(","),
        members=["xgboost-model"],
    ),
]  # fmt: skip


def put_case_data(s3: Any, bucket: str) -> None:
    """train/, validation/, test/ (label first) and batch/rows.csv (no label, the rows of
    :func:`batch_rows`) under ``bucket``."""
    for name, seed, rows in (("train", 1, 300), ("validation", 2, 100), ("test", 3, 100)):
        x, y = make_data(rows, seed)
        s3.put_object(Bucket=bucket, Key=f"{name}/part-0.csv", Body=csv_with_label(x, y))
    s3.put_object(Bucket=bucket, Key="batch/rows.csv", Body=csv_rows(batch_rows()[0]).encode())


def batch_rows() -> tuple[np.ndarray, np.ndarray]:
    return make_data(100, 4)


def right_answers(case: Case, body: str, y: np.ndarray) -> int:
    """How many of an endpoint's text/csv answers give the true label."""
    labels = [case.label(row) for row in case.rows(body)]
    assert len(labels) == len(y), body
    return sum(int(a == b) for a, b in zip(labels, y.astype(int).tolist(), strict=True))
