"""Evaluation job: score the held-out test split with the trained model → evaluation.json.

Runs as a SageMaker Processing job in the XGBoost framework image (xgboost, scikit-learn,
pandas), ``python3 evaluate.py --model-dir ... --test-dir ... --validation-dir ...
--output-dir ...``. ``--model-dir`` holds the training job's model.tar.gz (or its
extracted files); the test and validation dirs hold preprocess.py's CSVs (label first).

The decision threshold is chosen on the validation split, never on the test split:

- ``--threshold-strategy best_f1`` (default): the threshold with the highest validation F1;
- ``--threshold-strategy target_precision --target-precision P``: the lowest threshold
  whose validation precision reaches P (the most recall at that precision); when no
  threshold reaches P it falls back to best F1 and says so (``threshold.fallback``).

evaluation.json follows SageMaker Model Monitor's model-quality statistics format, which
the Model Registry shows for ``ModelMetrics.ModelQuality.Statistics``: every metric under
``binary_classification_metrics`` is ``{"value": v, "standard_deviation": s}`` (s from five
80% subsamples, "NaN" under 200 rows, as Model Monitor does), the confusion matrix is
``{actual: {predicted: count}}``, and the curves are ``receiver_operating_characteristic_curve``
and ``precision_recall_curve``. ``auc`` is the ROC AUC (Model Monitor's name; ``roc_auc`` is
the same value), ``pr_auc`` is the average precision. Top-level ``threshold``,
``calibration`` (Brier score, expected calibration error, reliability bins), ``rows`` and
``score_distribution`` (the test scores over their deciles: batch inference's baseline for
score drift) add what the registry format has no place for.

Self-contained: Python 3.8+, xgboost, scikit-learn, pandas, numpy; nothing from the
pipeline package.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn import metrics as skm

CURVE_POINTS = 101
STD_SAMPLES, STD_FRACTION, STD_MIN_ROWS = 5, 0.8, 200


@contextlib.contextmanager
def model_file_warnings_off() -> Iterator[None]:
    """xgboost >= 2 warns on every save/load of a model file without an extension (the
    container's "xgboost-model"); the format is the version's default, so it is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(UBJSON|Unknown file format).*")
        yield


class EvaluationError(Exception):
    """Input the job cannot evaluate; the message names what is missing and the fix."""


def base_dir(*parts: str) -> str:
    return os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), *parts)


# -- inputs --------------------------------------------------------------------------------------


def extract_model(model_dir: str, work: str) -> str:
    """The directory holding xgboost-model: model_dir itself, or model.tar.gz unpacked."""
    if os.path.isfile(os.path.join(model_dir, "xgboost-model")):
        return model_dir
    archives = sorted(glob.glob(os.path.join(model_dir, "**", "*.tar.gz"), recursive=True))
    if not archives:
        raise EvaluationError(
            f"no model.tar.gz or xgboost-model in {model_dir}: pass the training job's "
            "ModelArtifacts.S3ModelArtifacts as the model input"
        )
    with tarfile.open(archives[0]) as tar:
        root = os.path.realpath(work)
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(work, member.name))
            if target != root and not target.startswith(root + os.sep):
                raise EvaluationError(f"{archives[0]}: member {member.name!r} escapes the archive")
        tar.extractall(work)
    if not os.path.isfile(os.path.join(work, "xgboost-model")):
        raise EvaluationError(f"{archives[0]} holds no xgboost-model: is it a train.py model?")
    return work


def load_model(directory: str) -> tuple[xgb.Booster, dict[str, Any]]:
    booster = xgb.Booster()
    with model_file_warnings_off():
        booster.load_model(os.path.join(directory, "xgboost-model"))
    info: dict[str, Any] = {}
    path = os.path.join(directory, "features.json")
    if os.path.isfile(path):
        with open(path) as handle:
            info = json.load(handle)
    return booster, info


def read_split(path: str, name: str) -> tuple[np.ndarray, pd.DataFrame]:
    files = sorted(
        p for p in glob.glob(os.path.join(path, "*.csv")) if not os.path.basename(p).startswith(".")
    )
    frames = [pd.read_csv(p, header=None) for p in files if os.path.getsize(p) > 0]
    if not frames:
        raise EvaluationError(f"the {name} split in {path} holds no rows")
    data = pd.concat(frames, ignore_index=True)
    labels = data[0].to_numpy()
    if not set(np.unique(labels)) <= {0, 1}:
        raise EvaluationError(f"the {name} split's first column is not the 0/1 label")
    if labels.sum() == 0:
        raise EvaluationError(
            f"the {name} split has no fraud rows: PR-AUC and ROC-AUC are undefined; widen the "
            "date window or move the split boundaries"
        )
    return labels.astype(int), data.iloc[:, 1:]


def score(booster: xgb.Booster, features: pd.DataFrame, names: list[str] | None) -> np.ndarray:
    if names and len(names) != features.shape[1]:
        raise EvaluationError(
            f"the model expects {len(names)} features, the data has {features.shape[1]}: "
            "evaluate the model on the preprocessing run it was trained on"
        )
    return booster.predict(xgb.DMatrix(features, feature_names=names or None))


# -- metrics -------------------------------------------------------------------------------------


def choose_threshold(
    labels: np.ndarray, scores: np.ndarray, strategy: str, target_precision: float
) -> dict[str, Any]:
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
    # precision[i], recall[i] belong to thresholds[i]; the last point has no threshold
    precision, recall = precision[:-1], recall[:-1]
    total = precision + recall
    f1 = 2 * precision * recall / np.where(total > 0, total, 1.0)
    best = int(np.argmax(f1))
    chosen, fallback = best, None
    if strategy == "target_precision":
        reaching = np.flatnonzero(precision >= target_precision)
        if reaching.size:
            chosen = int(reaching[0])  # lowest threshold: the most recall at that precision
        else:
            fallback = (
                f"no threshold reaches precision {target_precision} on validation "
                f"(best {precision.max():.3f}); used the best-F1 threshold"
            )
    result = {
        "value": float(thresholds[chosen]),
        "strategy": strategy,
        "chosen_on": "validation",
        "validation_precision": float(precision[chosen]),
        "validation_recall": float(recall[chosen]),
        "validation_f1": float(f1[chosen]),
        "fallback": fallback,
    }
    if strategy == "target_precision":
        result["target_precision"] = target_precision
    return result


def point_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    tp = float(np.sum(predicted & (labels == 1)))
    fp = float(np.sum(predicted & (labels == 0)))
    fn = float(np.sum(~predicted & (labels == 1)))
    tn = float(np.sum(~predicted & (labels == 0)))
    n = tp + fp + fn + tn

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)

    def f_beta(beta: float) -> float:
        b2 = beta * beta
        return ratio((1 + b2) * precision * recall, b2 * precision + recall)

    base_rate = ratio(tp + fn, n)
    auc = float(skm.roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else 0.5
    return {
        "precision": precision,
        "recall": recall,
        "accuracy": ratio(tp + tn, n),
        # Model Monitor's constant classifier predicts the positive class for every row
        "recall_best_constant_classifier": 1.0,
        "precision_best_constant_classifier": base_rate,
        "accuracy_best_constant_classifier": base_rate,
        "true_positive_rate": recall,
        "true_negative_rate": ratio(tn, tn + fp),
        "false_positive_rate": ratio(fp, fp + tn),
        "false_negative_rate": ratio(fn, fn + tp),
        "auc": auc,
        "roc_auc": auc,
        "pr_auc": float(skm.average_precision_score(labels, scores)),
        "f0_5": f_beta(0.5),
        "f1": f_beta(1.0),
        "f2": f_beta(2.0),
        "brier_score": float(np.mean((scores - labels) ** 2)),
    }


def standard_deviations(
    labels: np.ndarray, scores: np.ndarray, threshold: float, seed: int = 0
) -> dict[str, Any]:
    """Model Monitor's way: the std of each metric over five 80% subsamples."""
    if len(labels) < STD_MIN_ROWS:
        return {}
    rng = np.random.RandomState(seed)
    size = int(len(labels) * STD_FRACTION)
    samples = []
    for _ in range(STD_SAMPLES):
        index = rng.choice(len(labels), size, replace=False)
        if labels[index].sum() == 0:
            continue
        samples.append(point_metrics(labels[index], scores[index], threshold))
    if len(samples) < 2:
        return {}
    return {k: float(np.std([s[k] for s in samples])) for k in samples[0]}


def curve(xs: np.ndarray, ys: np.ndarray) -> tuple[list[float], list[float]]:
    index = np.unique(np.linspace(0, len(xs) - 1, min(CURVE_POINTS, len(xs))).astype(int))
    return [round(float(x), 6) for x in xs[index]], [round(float(y), 6) for y in ys[index]]


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for i in range(bins):
        mask = which == i
        count = int(mask.sum())
        row: dict[str, Any] = {
            "lower": float(edges[i]),
            "upper": float(edges[i + 1]),
            "count": count,
        }
        if count:
            row["mean_predicted"] = float(scores[mask].mean())
            row["observed_rate"] = float(labels[mask].mean())
            ece += count / len(labels) * abs(row["mean_predicted"] - row["observed_rate"])
        table.append(row)
    return {
        "brier_score": float(np.mean((scores - labels) ** 2)),
        "expected_calibration_error": float(ece),
        "bins": table,
    }


def score_distribution(scores: np.ndarray) -> dict[str, Any]:
    """The test split's scores over their deciles (duplicates merged; right-closed bins,
    (-inf, e1], ..., (ek, +inf)), as preprocess writes feature histograms: the baseline
    batch inference compares each day's scores with (population stability index)."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return {"count": 0, "edges": [], "fractions": [1.0]}
    edges = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    bins = np.searchsorted(edges, values, side="left")
    fractions = np.bincount(bins, minlength=len(edges) + 1) / float(values.size)
    return {
        "count": int(values.size),
        "edges": [float(e) for e in edges],
        "fractions": [round(float(f), 8) for f in fractions],
    }


def evaluation_report(
    test_labels: np.ndarray,
    test_scores: np.ndarray,
    threshold: dict[str, Any],
    validation_rows: tuple[int, int],
    bins: int,
    model_info: dict[str, Any],
) -> dict[str, Any]:
    value = threshold["value"]
    point = point_metrics(test_labels, test_scores, value)
    spread = standard_deviations(test_labels, test_scores, value)
    predicted = test_scores >= value
    matrix = {
        str(actual): {
            str(guess): int(np.sum((test_labels == actual) & (predicted == bool(guess))))
            for guess in (0, 1)
        }
        for actual in (0, 1)
    }
    fpr, tpr, _ = skm.roc_curve(test_labels, test_scores)
    precision, recall, _ = skm.precision_recall_curve(test_labels, test_scores)
    fpr_points, tpr_points = curve(fpr, tpr)
    recall_points, precision_points = curve(recall[::-1], precision[::-1])
    metrics: dict[str, Any] = {"confusion_matrix": matrix}
    for name, number in point.items():
        metrics[name] = {"value": number, "standard_deviation": spread.get(name, "NaN")}
    metrics["receiver_operating_characteristic_curve"] = {
        "false_positive_rates": fpr_points,
        "true_positive_rates": tpr_points,
    }
    metrics["precision_recall_curve"] = {"precisions": precision_points, "recalls": recall_points}
    return {
        "version": 1,
        "binary_classification_metrics": metrics,
        "threshold": threshold,
        "calibration": calibration(test_labels, test_scores, bins),
        "rows": {
            "test": int(len(test_labels)),
            "test_positives": int(test_labels.sum()),
            "validation": validation_rows[0],
            "validation_positives": validation_rows[1],
        },
        "base_rate": float(test_labels.mean()),
        "score_distribution": score_distribution(test_scores),
        "model": {
            "rounds": model_info.get("rounds"),
            "features": len(model_info.get("features", [])) or None,
        },
    }


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    processing = base_dir("processing")
    parser = argparse.ArgumentParser(
        description="Evaluate the fraud model on the test split.", allow_abbrev=False
    )
    parser.add_argument("--model-dir", default=os.path.join(processing, "model"))
    parser.add_argument("--test-dir", default=os.path.join(processing, "test"))
    parser.add_argument("--validation-dir", default=os.path.join(processing, "validation"))
    parser.add_argument("--output-dir", default=os.path.join(processing, "evaluation"))
    parser.add_argument(
        "--threshold-strategy", choices=["best_f1", "target_precision"], default="best_f1"
    )
    parser.add_argument("--target-precision", type=float, default=0.8)
    parser.add_argument("--calibration-bins", type=int, default=10)
    args = parser.parse_args(argv)
    if not 0 < args.target_precision <= 1:
        parser.error("--target-precision must be in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        booster, info = load_model(extract_model(args.model_dir, work))
    names = info.get("features")
    validation_labels, validation_features = read_split(args.validation_dir, "validation")
    test_labels, test_features = read_split(args.test_dir, "test")
    threshold = choose_threshold(
        validation_labels,
        score(booster, validation_features, names),
        args.threshold_strategy,
        args.target_precision,
    )
    if threshold["fallback"]:
        print(f"threshold: {threshold['fallback']}", flush=True)
    report = evaluation_report(
        test_labels,
        score(booster, test_features, names),
        threshold,
        (int(len(validation_labels)), int(validation_labels.sum())),
        args.calibration_bins,
        info,
    )
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "evaluation.json"), "w") as handle:
        json.dump(report, handle, indent=2)
    metrics = report["binary_classification_metrics"]
    summary = " ".join(
        f"{name}={metrics[name]['value']:.4f}"
        for name in ("pr_auc", "auc", "precision", "recall", "f1", "brier_score")
    )
    print(f"test: {summary} threshold={threshold['value']:.4f} rows={len(test_labels)}", flush=True)
    try:
        os.makedirs(base_dir("output"), exist_ok=True)
        with open(base_dir("output", "message"), "w") as handle:
            handle.write(summary[:1024])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
