"""Inference handlers for endpoints and batch transform (SageMaker XGBoost / scikit-learn serving).

Input: rows of engineered features, without the label, in the order of the model's
``features.json`` (preprocess.py ``--mode transform`` writes exactly this as features.csv;
the training splits are the same with the label first, so a transform over them needs
``DataProcessing.InputFilter = "$[1:]"``).

- ``text/csv``: one row per line (a header line naming the features is skipped);
- ``application/json``: ``{"instances": [[...], ...]}``, a list of rows, or a list of
  objects keyed by feature name.

Output: the fraud probability per row; ``text/csv`` one per line (what batch transform
assembles line by line), ``application/json`` ``{"predictions": [...]}``.

Self-contained: Python 3.8+, xgboost, numpy; nothing from the pipeline package.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import warnings
from collections.abc import Iterator

import numpy as np
import xgboost as xgb


@contextlib.contextmanager
def model_file_warnings_off() -> Iterator[None]:
    """xgboost >= 2 warns on every save/load of a model file without an extension (the
    container's "xgboost-model"); the format is the version's default, so it is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(UBJSON|Unknown file format).*")
        yield


def _unsupported_format_error() -> type[Exception]:
    """The serving stack's error for an unsupported content type (mapped to 415)."""
    for module in ("sagemaker_inference.errors", "sagemaker_training.errors"):
        try:
            return importlib.import_module(module).UnsupportedFormatError
        except (ImportError, AttributeError):
            continue
    return ValueError


UnsupportedFormatError = _unsupported_format_error()
CSV, JSON = "text/csv", "application/json"
# input_fn is not given the model, yet skipping a CSV header needs the feature names: the
# process serves one model, and model_fn records its names here.
_FEATURES: dict[str, list[str] | None] = {"names": None}


class FraudModel:
    def __init__(self, booster: xgb.Booster, features: list[str] | None):
        self.booster = booster
        self.features = features

    @property
    def width(self) -> int | None:
        return len(self.features) if self.features else None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def model_fn(model_dir: str) -> FraudModel:
    booster = xgb.Booster()
    with model_file_warnings_off():
        booster.load_model(os.path.join(model_dir, "xgboost-model"))
    features = None
    path = os.path.join(model_dir, "features.json")
    if os.path.isfile(path):
        with open(path) as handle:
            features = json.load(handle).get("features")
    _FEATURES["names"] = features
    return FraudModel(booster, features)


def _parse_csv(text: str, features: list[str] | None) -> np.ndarray:
    lines = [line for line in io.StringIO(text).read().splitlines() if line.strip()]
    if lines and features and lines[0].split(",")[0].strip() in (features[0], "is_fraud"):
        lines = lines[1:]  # a header line
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append([float(v) if v.strip() else np.nan for v in line.split(",")])
        except ValueError:
            raise ValueError(
                f"CSV row {number} is not all numbers: {line[:120]!r}; send engineered "
                "features (preprocess.py --mode transform), not raw transactions"
            ) from None
    return np.array(rows, dtype=np.float32) if rows else np.zeros((0, 0), dtype=np.float32)


def _parse_json(text: str, features: list[str] | None) -> np.ndarray:
    payload = json.loads(text)
    if isinstance(payload, dict):
        payload = payload.get("instances", payload.get("features"))
    if not isinstance(payload, list):
        raise ValueError('JSON input must be {"instances": [[...], ...]} or a list of rows')
    if payload and isinstance(payload[0], dict):
        if not features:
            raise ValueError("rows keyed by feature name need the model's features.json")
        missing = sorted(set(features) - set(payload[0]))
        if missing:
            raise ValueError(f"JSON row 1 lacks feature(s) {', '.join(missing)}")
        payload = [[row[name] for name in features] for row in payload]
    return np.array(payload, dtype=np.float32).reshape(len(payload), -1)


def input_fn(input_data: str | bytes, content_type: str) -> np.ndarray:
    kind = _media_type(content_type)
    text = input_data.decode("utf-8") if isinstance(input_data, bytes) else input_data
    features = _FEATURES["names"]
    if kind == CSV:
        return _parse_csv(text, features)
    if kind == JSON:
        return _parse_json(text, features)
    raise UnsupportedFormatError(f"{content_type} (send text/csv or application/json)")


def predict_fn(data: np.ndarray, model: FraudModel) -> np.ndarray:
    if data.size == 0:
        return np.zeros(0, dtype=np.float32)
    data = np.atleast_2d(data)
    if model.width is not None and data.shape[1] != model.width:
        hint = " (is the label column still in? drop it, e.g. InputFilter $[1:])" * (
            data.shape[1] == model.width + 1
        )
        raise ValueError(
            f"each row needs {model.width} features, got {data.shape[1]}{hint}; the order is "
            "that of features.json in the model"
        )
    matrix = xgb.DMatrix(data, feature_names=model.features)
    return model.booster.predict(matrix)


def output_fn(prediction: np.ndarray, accept: str) -> str:
    kind = _media_type(accept)
    values = [float(p) for p in np.asarray(prediction).ravel()]
    if kind in (CSV, "", "*/*"):
        return "".join(f"{v:.8g}\n" for v in values)
    if kind == JSON:
        return json.dumps({"predictions": values})
    raise UnsupportedFormatError(f"{accept} (accept text/csv or application/json)")
