"""Inference for the built-in algorithms that have handlers of their own (k-NN, Linear
Learner), in the request and response formats common to SageMaker's algorithms.

In: ``text/csv`` (features only; ``label_size=N`` skips N leading columns),
``application/json`` (``{"instances": [{"features": [...]}, {"data": {"features":
{"values": [...]}}}]}``, sparse ``keys``/``shape`` too), ``application/jsonlines`` (one such
instance a line) and ``application/x-recordio-protobuf``. Out: ``application/json`` by
default (``{"predictions": [{...}, ...]}``), ``application/jsonlines``, ``text/csv`` (a
prediction's values, one record a line) and ``application/x-recordio-protobuf`` (each
value in the record's ``label`` map). ``verbose=true`` on the Accept type asks k-NN for its
neighbours too.
"""

from __future__ import annotations

import importlib
import io
import json
from typing import Any

from local_aws.sagemaker.builtins.common import (
    CSV,
    RECORDIO,
    AlgorithmError,
    media_type,
    records_to_arrays,
)

JSON = "application/json"
JSONLINES = "application/jsonlines"
INPUT_TYPES = (CSV, JSON, JSONLINES, RECORDIO)
OUTPUT_TYPES = (JSON, JSONLINES, CSV, RECORDIO)


class BadRequest(Exception):
    """The request cannot be read (status 400) or its type is not served (415, 406)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _parameters(content_type: str) -> dict[str, str]:
    found = {}
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        found[key.strip().lower()] = value.strip().strip('"').lower()
    return found


def _instance(item: Any, width: int) -> list[float]:
    if isinstance(item, list):
        return item
    if not isinstance(item, dict):
        raise BadRequest(400, f"an instance must be an object or a list of numbers, not {item!r}")
    features = item.get("features")
    if features is None:
        features = (item.get("data") or {}).get("features")
    if isinstance(features, list):
        return features
    if isinstance(features, dict) and "values" in features:
        if not features.get("keys"):
            return list(features["values"])
        size = (features.get("shape") or [width])[0]
        row = [0.0] * int(size)
        for key, value in zip(features["keys"], features["values"], strict=True):
            row[int(key)] = value
        return row
    raise BadRequest(
        400, 'an instance needs "features": [...] or "data": {"features": {"values": [...]}}'
    )


def decode(body: bytes, content_type: str, width: int) -> Any:
    """The request's records as a 2-D float array of ``width`` features each."""
    import numpy as np

    kind = media_type(content_type)
    try:
        if kind == CSV:
            skip = int(_parameters(content_type).get("label_size", "0"))
            text = body.decode("utf-8").strip()
            rows = [
                [float(v) for v in line.split(",")][skip:]
                for line in text.splitlines()
                if line.strip()
            ]
        elif kind == JSON:
            payload = json.loads(body)
            items = payload.get("instances") if isinstance(payload, dict) else payload
            if not isinstance(items, list):
                raise BadRequest(400, 'JSON input needs {"instances": [...]}')
            rows = [_instance(item, width) for item in items]
        elif kind == JSONLINES:
            rows = [
                _instance(json.loads(line), width) for line in body.splitlines() if line.strip()
            ]
        elif kind == RECORDIO:
            features, _ = records_to_arrays(body)
            rows = features.tolist()
        else:
            raise BadRequest(
                415,
                f"content type {content_type!r} is not supported: use one of {list(INPUT_TYPES)}",
            )
    except (ValueError, TypeError, UnicodeDecodeError, AlgorithmError) as exc:
        raise BadRequest(400, f"could not read the {kind} request: {exc}") from exc
    array = np.zeros((0, width)) if not rows else np.asarray(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != width:
        found = array.shape[1] if array.ndim == 2 else "varying"
        raise BadRequest(
            400, f"the model takes {width} features per record; the request has {found}"
        )
    return array


def _values(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def encode(predictions: list[dict[str, Any]], accept: str) -> tuple[bytes, str]:
    from sagemaker_training.record_pb2 import Record
    from sagemaker_training.recordio import _write_recordio

    kind = media_type(accept)
    if kind == JSON:
        return json.dumps({"predictions": predictions}).encode(), JSON
    if kind == JSONLINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode(), JSONLINES
    if kind == CSV:
        lines = (
            ",".join(repr(v) for value in p.values() for v in _values(value)) for p in predictions
        )
        return "".join(line + "\n" for line in lines).encode(), CSV
    if kind == RECORDIO:
        buffer = io.BytesIO()
        for prediction in predictions:
            record = Record()
            for key, value in prediction.items():
                record.label[key].float32_tensor.values.extend(_values(value))
            _write_recordio(buffer, record.SerializeToString())
        return buffer.getvalue(), RECORDIO
    raise BadRequest(
        406, f"accept type {accept!r} is not supported: use one of {list(OUTPUT_TYPES)}"
    )


class AlgorithmService:
    """The model server's service for a built-in algorithm's model."""

    def __init__(self, module: str, model_dir: str):
        self.model = importlib.import_module(module).load(model_dir)

    def resolve_accept(self, accept: str | None, content_type: str) -> str:
        if not accept or accept.strip() == "*/*":
            return JSON  # the algorithms answer JSON unless asked otherwise
        return accept

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        features = decode(body, content_type, self.model.feature_dim)
        verbose = _parameters(accept).get("verbose") == "true"
        if media_type(accept) not in OUTPUT_TYPES:  # before the work, not after
            raise BadRequest(
                406, f"accept type {accept!r} is not supported: use one of {list(OUTPUT_TYPES)}"
            )
        predictions = self.model.predict(features, verbose=verbose) if len(features) else []
        return encode(predictions, accept)
