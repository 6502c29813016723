"""What every built-in algorithm's training shares: its hyperparameters, its channels, its
model directory and how it fails, under the container contract of SageMaker's algorithms.

A training job's process (in its private /opt/ml) calls :func:`run` with the algorithm's
``train``; a bad input raises :class:`AlgorithmError` whose text, ``ClientError: ...``,
becomes the job's FailureReason, as the algorithms write it to /opt/ml/output/failure.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HOST = "algo-1"  # the algorithms name their host so in their log lines
CSV = "text/csv"
RECORDIO = "application/x-recordio-protobuf"
LIBSVM = ("text/libsvm", "libsvm", "text/x-libsvm")


class AlgorithmError(Exception):
    """Bad input for the algorithm; the message becomes the job's FailureReason."""


def base_dir() -> Path:
    """/opt/ml: read at call time, since the warm trainer forks jobs from one process."""
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def hyperparameters() -> dict[str, str]:
    raw = json.loads((base_dir() / "input/config/hyperparameters.json").read_text())
    # the SDK JSON-encodes values ('"binary:logistic"'); boto3 users send them plain
    values = {}
    for key, value in raw.items():
        try:
            decoded = json.loads(value)
            values[key] = decoded if isinstance(decoded, str) else value
        except (TypeError, ValueError):
            values[key] = value
    return values


def channels() -> dict[str, dict[str, Any]]:
    """inputdataconfig.json: channel name -> its configuration (ContentType, ...)."""
    return json.loads((base_dir() / "input/config/inputdataconfig.json").read_text())


def require(hps: dict[str, str], names: Iterable[str]) -> None:
    """The algorithms' own text when required hyperparameters are missing."""
    missing = [name for name in names if name not in hps]
    if missing:
        listed = ", ".join(f"'{name}'" for name in missing)
        raise AlgorithmError(
            f"ClientError: No value(s) were specified for {listed} which are required "
            "hyperparameter(s) (caused by ValidationError)"
        )


def invalid(name: str, value: Any, expected: str) -> AlgorithmError:
    return AlgorithmError(
        f"ClientError: Hyperparameter {name}: {value!r} is not {expected} (caused by "
        "ValidationError)"
    )


def integer(hps: dict[str, str], name: str, default: int | None = None, *, low: int = 1) -> int:
    value = hps.get(name)
    if value is None or value == "auto":
        if default is None:
            raise invalid(name, value, f"an integer >= {low}")
        return default
    try:
        number = int(float(value))
    except ValueError:
        raise invalid(name, value, f"an integer >= {low}") from None
    if number != float(value) or number < low:
        raise invalid(name, value, f"an integer >= {low}")
    return number


def number(hps: dict[str, str], name: str, default: float, *, low: float = 0.0) -> float:
    value = hps.get(name)
    if value is None or value == "auto":
        return default
    try:
        found = float(value)
    except ValueError:
        raise invalid(name, value, f"a number >= {low}") from None
    if not found >= low:
        raise invalid(name, value, f"a number >= {low}")
    return found


def choice(hps: dict[str, str], name: str, options: tuple[str, ...], default: str) -> str:
    value = hps.get(name, default)
    if value not in options:
        raise invalid(name, value, f"one of {list(options)}")
    return value


def boolean(hps: dict[str, str], name: str, default: bool) -> bool:
    value = str(hps.get(name, default)).lower()
    if value not in ("true", "false", "auto"):
        raise invalid(name, hps.get(name), "one of ['true', 'false', 'auto']")
    return default if value == "auto" else value == "true"


# -- channels ---------------------------------------------------------------------------------
def data_files(channel: str) -> list[Path]:
    folder = base_dir() / "input/data" / channel
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AlgorithmError(f"ClientError: No training data in channel {channel!r}")
    return files


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def read_channel(channel: str, content_type: str) -> tuple[Any, Any]:
    """(features, labels) of a channel: CSV with the label in the first column and no
    header, RecordIO-protobuf records, or libsvm (features then sparse)."""
    import numpy as np

    files = data_files(channel)
    kind = media_type(content_type)
    if kind in (CSV, "csv"):
        import pandas as pd

        try:
            frames = [pd.read_csv(f, header=None) for f in files]
            data = pd.concat(frames, ignore_index=True).to_numpy(dtype=np.float32)
        except ValueError as exc:
            raise AlgorithmError(
                f"ClientError: channel {channel!r}: the CSV is not all numbers ({exc}); give "
                "the label in the first column and numeric features, with no header"
            ) from exc
        if data.shape[1] < 2:
            raise AlgorithmError(
                f"ClientError: channel {channel!r}: CSV needs the label in the first column "
                "and at least one feature after it"
            )
        return data[:, 1:], data[:, 0]
    if kind == RECORDIO:
        rows, labels = [], []
        for f in files:
            features, label = records_to_arrays(f.read_bytes(), where=f"channel {channel!r}")
            rows.append(features)
            labels.append(label)
        width = max(r.shape[1] for r in rows)
        if any(r.shape[1] != width for r in rows):
            raise AlgorithmError(
                f"ClientError: channel {channel!r}: its files' records have different numbers "
                "of features"
            )
        return np.vstack(rows), np.concatenate(labels)
    if kind in LIBSVM:
        import scipy.sparse
        from sklearn.datasets import load_svmlight_files

        loaded = load_svmlight_files([str(f) for f in files])
        return scipy.sparse.vstack(loaded[0::2]).tocsr(), np.concatenate(loaded[1::2])
    raise AlgorithmError(
        f"ClientError: channel {channel!r}: content type {content_type!r} is not supported; "
        f"use {CSV} (label first), {RECORDIO} or text/libsvm"
    )


def records_to_arrays(blob: bytes, *, where: str = "the request") -> tuple[Any, Any]:
    """RecordIO-protobuf (the SageMaker Record format) as (float32 features, labels); sparse
    records (keys and shape) come out dense. Labels are NaN where a record has none."""
    import numpy as np
    from sagemaker_training.record_pb2 import Record

    # the SageMaker SDK v3's own reader is a stub; the training toolkit's works
    from sagemaker_training.recordio import _read_recordio

    rows: list[Any] = []
    labels: list[float] = []
    record = Record()
    try:
        for raw in _read_recordio(io.BytesIO(blob)):
            record.ParseFromString(raw)
            tensor = _tensor(record.features["values"]) if "values" in record.features else None
            if tensor is None:
                raise AlgorithmError(f"ClientError: {where}: a record has no features 'values'")
            values, keys, shape = tensor
            if len(keys):
                width = int(shape[0]) if len(shape) else int(max(keys)) + 1
                row = np.zeros(width, dtype=np.float32)
                row[np.asarray(keys, dtype=np.int64)] = values
            else:
                row = np.asarray(values, dtype=np.float32)
            rows.append(row)
            label = _tensor(record.label["values"]) if "values" in record.label else None
            labels.append(float(label[0][0]) if label is not None and len(label[0]) else np.nan)
    except (AssertionError, ValueError) as exc:  # bad magic number, bad protobuf
        raise AlgorithmError(f"ClientError: {where} is not RecordIO-protobuf: {exc}") from exc
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0)
    width = max(len(r) for r in rows)
    dense = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        dense[i, : len(row)] = row
    return dense, np.asarray(labels)


def _tensor(value: Any) -> tuple[list[float], list[int], list[int]] | None:
    for kind in ("float32_tensor", "float64_tensor", "int32_tensor"):
        if value.HasField(kind):
            tensor = getattr(value, kind)
            return list(tensor.values), list(tensor.keys), list(tensor.shape)
    return None


def check_width(features: Any, feature_dim: int | None, channel: str) -> None:
    if feature_dim is not None and features.shape[1] != feature_dim:
        raise AlgorithmError(
            f"ClientError: channel {channel!r} has {features.shape[1]} features per record, "
            f"but the hyperparameter feature_dim is {feature_dim}: set feature_dim to the "
            "number of feature columns (the label column not counted)"
        )


# -- the model and the log --------------------------------------------------------------------
MODEL_FILE = "model_algo-1"  # what the algorithms put in model.tar.gz


def save_arrays(arrays: dict[str, Any]) -> Path:
    """The model as /opt/ml/model/model_algo-1: a NumPy .npz (arrays only, nothing pickled)."""
    import numpy as np

    folder = base_dir() / "model"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    with path.open("wb") as fh:  # a file object: numpy would add ".npz" to a name
        np.savez(fh, **arrays)
    return path


def load_arrays(model_dir: str | Path) -> dict[str, Any]:
    import numpy as np

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        present = sorted(p.name for p in Path(model_dir).iterdir())
        raise FileNotFoundError(
            f"{MODEL_FILE} not found in the model (it contains: {present or 'nothing'}): "
            "ModelDataUrl must be the model.tar.gz this algorithm's training job wrote"
        )
    with np.load(path, allow_pickle=False) as found:
        return {name: found[name] for name in found.files}


def log(message: str) -> None:
    print(message, flush=True)


def run(train: Callable[[], None]) -> int:
    """A training job's main: train; a bad input fails the job with its ClientError."""
    try:
        train()
    except AlgorithmError as exc:
        (base_dir() / "output").mkdir(parents=True, exist_ok=True)
        (base_dir() / "output/failure").write_text(str(exc))
        print(exc, file=sys.stderr, flush=True)
        return 1
    return 0
