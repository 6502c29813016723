"""Inference handlers for endpoints and batch transform (SageMaker XGBoost / scikit-learn serving).

Input: rows of engineered features, without the label, in the order of the model's
``features.json`` (preprocess.py ``--mode transform`` writes exactly this as features.csv;
the training splits are the same with the label first, so a transform over them needs
``DataProcessing.InputFilter = "$[1:]"``).

- ``text/csv``: one row per line (a header line naming the features is skipped);
- ``application/json``: ``{"instances": [[...], ...]}``, a list of rows, or a list of
  objects keyed by feature name.

Raw transactions (batch inference): when the model carries ``vocabulary.json``, ``text/csv``
rows of the raw schema's columns from ``event_time`` to ``distance_from_home_km`` (what
batch transform sends with ``InputFilter "$[1:12]"``: no transaction_id, no label) are
engineered here with preprocess.py's own code and vocabulary, so the features cannot
differ from training's. Every row gets a score (a value the gate let through but the
model cannot read becomes a missing value, as XGBoost treats them), and the raw header
line, which batch transform sends like any other record, is answered with the output's
column names: with ``JoinSource Input`` the joined output then starts with a header too.

Output: the fraud probability per row; ``text/csv`` one per line (what batch transform
assembles line by line), ``application/json`` ``{"predictions": [...]}``. With
``MLOPS_MODEL_VERSION`` in the environment (the transform job sets it), each CSV line
also carries that version: ``<score>,<version>``.

Self-contained: Python 3.8+, xgboost, numpy (pandas and the sibling preprocess.py for raw
rows); nothing from the pipeline package.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from typing import Any

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
# input_fn is not given the model, yet skipping a CSV header needs the feature names (and
# reading raw rows its vocabulary): the process serves one model, and model_fn records
# them here.
_FEATURES: dict[str, Any] = {"names": None, "vocabulary": None}
# the raw schema's columns a batch transform sends (InputFilter "$[1:12]")
RAW_INPUT = [
    "event_time",
    "card_id",
    "amount",
    "merchant_category",
    "channel",
    "country",
    "hour",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "distance_from_home_km",
]
SCORE_COLUMN, VERSION_COLUMN = "score", "model_version"
VERSION_ENV = "MLOPS_MODEL_VERSION"


class RawRows:
    """Raw transaction rows (strings) and which of them are header lines."""

    def __init__(self, frame: Any, header: np.ndarray):
        self.frame = frame
        self.header = header


class Scores:
    """Predictions for raw rows: header lines are answered with the column names."""

    def __init__(self, values: np.ndarray, header: np.ndarray):
        self.values = values
        self.header = header


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
    _FEATURES["vocabulary"] = None
    vocabulary = os.path.join(model_dir, "vocabulary.json")
    if os.path.isfile(vocabulary):
        with open(vocabulary) as handle:
            _FEATURES["vocabulary"] = json.load(handle)
    return FraudModel(booster, features)


def _is_raw(first_line: str) -> bool:
    """A raw transaction row (or the raw header): the raw width, and not all numbers."""
    if _FEATURES["vocabulary"] is None:
        return False
    fields = first_line.split(",")
    if len(fields) != len(RAW_INPUT):
        return False
    try:
        [float(v) for v in fields if v.strip()]
    except ValueError:
        return True
    return False


def _parse_raw(text: str) -> RawRows:
    import pandas as pd

    frame = pd.read_csv(
        io.StringIO(text),
        header=None,
        names=RAW_INPUT,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        skip_blank_lines=True,
    )
    header = (frame["event_time"] == RAW_INPUT[0]).to_numpy()
    return RawRows(frame, header)


def _engineer_raw(rows: RawRows) -> Any:
    """preprocess.py's features for the raw rows (header lines included, as missing)."""
    import pandas as pd

    if __package__:
        from . import preprocess
    else:  # served from the code directory, beside preprocess.py
        import preprocess  # type: ignore[no-redef]

    frame = rows.frame.copy()
    for column in ("card_id", "merchant_category", "channel", "country"):
        frame[column] = frame[column].str.strip()
    frame["event_time"] = preprocess.parse_times(frame["event_time"])
    for column in preprocess.NUMERIC_RAW:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return preprocess.engineer(frame, _FEATURES["vocabulary"])


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
        first = next((line for line in text.splitlines() if line.strip()), "")
        if _is_raw(first):
            return _parse_raw(text)  # type: ignore[return-value]
        return _parse_csv(text, features)
    if kind == JSON:
        return _parse_json(text, features)
    raise UnsupportedFormatError(f"{content_type} (send text/csv or application/json)")


def predict_fn(data: np.ndarray | RawRows, model: FraudModel) -> np.ndarray | Scores:
    if isinstance(data, RawRows):
        features = _engineer_raw(data)
        names = list(features.columns)
        if model.features is not None and names != model.features:
            raise ValueError(
                "the model's features.json does not match the features preprocess.py "
                "engineers from raw rows: retrain the model with this code version"
            )
        matrix = xgb.DMatrix(features.to_numpy(dtype=np.float32), feature_names=names)
        return Scores(model.booster.predict(matrix), data.header)
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


def output_fn(prediction: np.ndarray | Scores, accept: str) -> str:
    kind = _media_type(accept)
    header = prediction.header if isinstance(prediction, Scores) else None
    raw = prediction.values if isinstance(prediction, Scores) else prediction
    values = [float(p) for p in np.asarray(raw).ravel()]
    if kind in (CSV, "", "*/*"):
        version = os.environ.get(VERSION_ENV)
        tail = f",{version}" if version else ""
        names = SCORE_COLUMN + (f",{VERSION_COLUMN}" if version else "")
        if header is None:
            return "".join(f"{v:.8g}{tail}\n" for v in values)
        return "".join(
            f"{names}\n" if header[i] else f"{v:.8g}{tail}\n" for i, v in enumerate(values)
        )
    if header is not None:
        values = [v for i, v in enumerate(values) if not header[i]]
    if kind == JSON:
        return json.dumps({"predictions": values})
    raise UnsupportedFormatError(f"{accept} (accept text/csv or application/json)")
