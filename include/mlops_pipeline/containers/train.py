"""Training job: an XGBoost fraud classifier, in script mode of the SageMaker XGBoost image.

The toolkit runs ``python train.py --max_depth 6 --eta 0.1 ...`` (one ``--name value`` per
hyperparameter) with the channels in ``SM_CHANNEL_TRAIN`` / ``SM_CHANNEL_VALIDATION``
(CSV, label first, no header, as preprocess.py writes them) and the optional
``SM_CHANNEL_METADATA`` (preprocess.py's metadata: header.csv for the feature names;
vocabulary.json and baseline.json are copied into the model so it carries its encoding).

Every round prints a line as the XGBoost container's logs show it in CloudWatch, e.g.
``[12]#011train-auc:0.95#011train-aucpr:0.81#011validation-auc:0.93#011validation-aucpr:0.74``,
so the usual MetricDefinitions regexes work, e.g.
``.*\\[[0-9]+\\].*#011validation-aucpr:([-+]?[0-9]*\\.?[0-9]+)``; at the end it prints
``validation:aucpr=<v>`` (and the other final metrics) for the model actually saved.

The model goes to ``SM_MODEL_DIR/xgboost-model`` (Booster.save_model, what the XGBoost
container's default model_fn loads), with ``features.json`` (feature names, label, best
iteration, hyperparameters, final metrics).

Managed spot: every ``--checkpoint_frequency`` rounds the booster is written (atomically)
to the checkpoint directory, ``$SAGEMAKER_BASE_DIR/checkpoints`` (/opt/ml/checkpoints on
SageMaker, which syncs it with CheckpointConfig.S3Uri); a restarted job resumes from the
latest checkpoint and trains only the remaining rounds.

Self-contained: Python 3.8+, xgboost >= 1.6, pandas, numpy; nothing from the pipeline package.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

LABEL = "is_fraud"
CHECKPOINT = re.compile(r"^xgboost-checkpoint\.(\d+)\.json$")
KEEP_CHECKPOINTS = 2


@contextlib.contextmanager
def model_file_warnings_off() -> Iterator[None]:
    """xgboost >= 2 warns on every save/load of a model file without an extension (the
    container's "xgboost-model"); the format is the version's default, so it is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(UBJSON|Unknown file format).*")
        yield


class TrainingError(Exception):
    """Input the job cannot train on; the message names the channel or file and the fix."""


def base_dir(*parts: str) -> str:
    return os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), *parts)


def _scale_pos_weight(text: str) -> str:
    if text != "auto":
        try:
            if float(text) <= 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"scale_pos_weight must be a positive number or 'auto', got {text!r}"
            ) from None
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # no abbreviations: a misspelt hyperparameter must fail, not set a similar one
    parser = argparse.ArgumentParser(
        description="Train the XGBoost fraud classifier.", allow_abbrev=False
    )

    def hp(name: str, **kwargs: Any) -> None:
        # hyperparameters arrive as --max_depth; --max-depth works too
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        parser.add_argument(*flags, dest=name, **kwargs)

    hp("num_round", type=int, default=100)
    hp("max_depth", type=int, default=6)
    hp("eta", type=float, default=0.1)
    hp("min_child_weight", type=float, default=1.0)
    hp("subsample", type=float, default=1.0)
    hp("colsample_bytree", type=float, default=1.0)
    hp("gamma", type=float, default=0.0)
    hp("lambda", type=float, default=1.0)
    hp("alpha", type=float, default=0.0)
    hp("max_bin", type=int, default=256)
    hp("scale_pos_weight", type=_scale_pos_weight, default="1", help="a number, or 'auto'")
    hp("early_stopping_rounds", type=int, default=10, help="0 disables early stopping")
    hp("eval_metric", default="aucpr", help="the validation metric to optimise")
    hp("objective", default="binary:logistic")
    hp("tree_method", default="hist")
    hp("seed", type=int, default=0)
    hp("nthread", type=int, default=0, help="0: every core")
    hp("checkpoint_frequency", type=int, default=10, help="rounds between checkpoints, 0: none")

    env = os.environ.get
    parser.add_argument("--model-dir", default=env("SM_MODEL_DIR", base_dir("model")))
    parser.add_argument("--train", default=env("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION"))
    parser.add_argument("--metadata", default=env("SM_CHANNEL_METADATA"))
    parser.add_argument(
        "--output-data-dir", default=env("SM_OUTPUT_DATA_DIR", base_dir("output", "data"))
    )
    parser.add_argument("--checkpoint-dir", default=base_dir("checkpoints"))
    args = parser.parse_args(argv)
    if args.num_round < 1:
        parser.error(f"num_round must be >= 1, got {args.num_round}")
    if not args.train:
        parser.error("no training data: add a channel named 'train' (or pass --train DIR)")
    if not args.validation:
        parser.error(
            "no validation data: add a channel named 'validation' (or pass --validation DIR)"
        )
    return args


# -- data ----------------------------------------------------------------------------------------


def read_channel(path: str, channel: str) -> pd.DataFrame:
    """Every CSV file of a channel (label first, no header), as one float frame."""
    if not os.path.isdir(path):
        raise TrainingError(f"channel {channel!r}: directory {path} does not exist")
    files = sorted(
        p
        for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
        if os.path.isfile(p) and not os.path.basename(p).startswith(".")
    )
    frames = []
    for file in files:
        try:
            frame = pd.read_csv(file, header=None)
        except pd.errors.EmptyDataError:
            continue
        except (UnicodeDecodeError, pd.errors.ParserError) as error:
            raise TrainingError(f"channel {channel!r}: {file} is not CSV: {error}") from None
        frames.append(frame)
    if not frames:
        raise TrainingError(
            f"channel {channel!r} holds no rows ({path}): check the preprocessing output"
        )
    widths = {frame.shape[1] for frame in frames}
    if len(widths) > 1:
        raise TrainingError(f"channel {channel!r}: files have different column counts {widths}")
    data = pd.concat(frames, ignore_index=True)
    non_numeric = [i for i, t in enumerate(data.dtypes) if not np.issubdtype(t, np.number)]
    if non_numeric:
        raise TrainingError(
            f"channel {channel!r}: column(s) {non_numeric} are not numeric; the training data "
            "must be preprocess.py's output (label first, numbers only, no header)"
        )
    labels = set(np.unique(data[0]))
    if not labels <= {0, 1}:
        raise TrainingError(
            f"channel {channel!r}: the first column must be the 0/1 label, found {sorted(labels)}"
        )
    return data


def feature_names(metadata: str | None, width: int) -> list[str]:
    header = os.path.join(metadata, "header.csv") if metadata else None
    if header is None or not os.path.isfile(header):
        return [f"f{i}" for i in range(width)]
    with open(header) as handle:
        names = handle.readline().strip().split(",")
    if len(names) - 1 != width:
        raise TrainingError(
            f"{header} names {len(names) - 1} features but the data has {width}: train and "
            "metadata must come from the same preprocessing run"
        )
    return names[1:]


# -- checkpoints ---------------------------------------------------------------------------------


def checkpoints(directory: str) -> list[tuple[int, str]]:
    """(rounds, path) of the checkpoints in directory, newest last."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = CHECKPOINT.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def load_latest_checkpoint(directory: str) -> xgb.Booster | None:
    for _, path in reversed(checkpoints(directory)):
        booster = xgb.Booster()
        try:
            booster.load_model(path)
        except xgb.core.XGBoostError as error:
            print(f"checkpoint {path} is unreadable ({error}); trying an older one", flush=True)
            continue
        return booster
    return None


def save_checkpoint(booster: xgb.Booster, directory: str, rounds: int) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"xgboost-checkpoint.{rounds:06d}.json")
    # write then rename: a job stopped mid-write never leaves a truncated latest checkpoint
    partial = os.path.join(directory, f".partial-{rounds}.json")
    booster.save_model(partial)
    os.replace(partial, path)
    for _, old in checkpoints(directory)[:-KEEP_CHECKPOINTS]:
        os.remove(old)
    return path


class Progress(xgb.callback.TrainingCallback):
    """Per-round metric lines in the XGBoost container's log format, and checkpoints."""

    def __init__(self, offset: int, total: int, directory: str, frequency: int):
        super().__init__()
        self.offset, self.total = offset, total
        self.directory, self.frequency = directory, frequency
        self.history: list[dict[str, Any]] = []

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        done = self.offset + epoch + 1  # rounds in the model, this one included
        fields, values = [], {}
        for data_name, metrics in evals_log.items():
            for metric, scores in metrics.items():
                score = scores[-1][0] if isinstance(scores[-1], tuple) else scores[-1]
                fields.append(f"{data_name}-{metric}:{score:.5f}")
                values[f"{data_name}-{metric}"] = float(score)
        # "#011" is how CloudWatch shows the tab XGBoost prints; regexes expect it literally
        print(f"[{done - 1}]#011" + "#011".join(fields), flush=True)
        self.history.append({"round": done - 1, **values})
        if self.frequency and done % self.frequency == 0 and done < self.total:
            save_checkpoint(model, self.directory, done)
            print(f"checkpoint saved at round {done}", flush=True)
        return False


# -- training ------------------------------------------------------------------------------------


def booster_params(args: argparse.Namespace, positives: int, negatives: int) -> dict[str, Any]:
    weight = args.scale_pos_weight
    if weight == "auto":
        weight = negatives / max(positives, 1)
    metrics = [m for m in ("auc", "aucpr") if m != args.eval_metric] + [args.eval_metric]
    params: dict[str, Any] = {
        "objective": args.objective,
        # the last metric is the one early stopping watches
        "eval_metric": metrics,
        "max_depth": args.max_depth,
        "eta": args.eta,
        "min_child_weight": args.min_child_weight,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "gamma": args.gamma,
        "lambda": getattr(args, "lambda"),
        "alpha": args.alpha,
        "max_bin": args.max_bin,
        "scale_pos_weight": float(weight),
        "tree_method": args.tree_method,
        "seed": args.seed,
    }
    if args.nthread > 0:
        params["nthread"] = args.nthread
    return params


def evaluate(booster: xgb.Booster, data: xgb.DMatrix, name: str) -> dict[str, float]:
    """The booster's eval metrics on one dataset, e.g. {"aucpr": 0.7, "auc": 0.9}."""
    text = booster.eval_set([(data, name)])
    return {
        metric: float(value)
        for metric, value in re.findall(rf"{name}-([\w@.-]+):([-\d.eE+]+)", text)
    }


def train(args: argparse.Namespace) -> dict[str, Any]:
    train_data = read_channel(args.train, "train")
    validation_data = read_channel(args.validation, "validation")
    if train_data.shape[1] != validation_data.shape[1]:
        raise TrainingError(
            f"train has {train_data.shape[1] - 1} features, validation "
            f"{validation_data.shape[1] - 1}: both must come from the same preprocessing run"
        )
    names = feature_names(args.metadata, train_data.shape[1] - 1)
    positives = int(train_data[0].sum())
    if positives == 0:
        raise TrainingError("the training data has no fraud rows: widen the date window")
    dtrain = xgb.DMatrix(train_data.iloc[:, 1:], label=train_data[0], feature_names=names)
    dvalid = xgb.DMatrix(validation_data.iloc[:, 1:], label=validation_data[0], feature_names=names)
    print(
        f"train: {len(train_data)} rows ({positives} fraud); validation: "
        f"{len(validation_data)} rows ({int(validation_data[0].sum())} fraud); "
        f"{len(names)} features",
        flush=True,
    )
    params = booster_params(args, positives, len(train_data) - positives)

    resumed = load_latest_checkpoint(args.checkpoint_dir)
    done = resumed.num_boosted_rounds() if resumed is not None else 0
    if resumed is not None:
        print(f"resuming from checkpoint at round {done}", flush=True)
    progress = Progress(done, args.num_round, args.checkpoint_dir, args.checkpoint_frequency)
    callbacks: list[Any] = [progress]
    if args.early_stopping_rounds > 0:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=args.early_stopping_rounds,
                metric_name=args.eval_metric,
                data_name="validation",
                maximize=args.eval_metric not in ("logloss", "error", "rmse", "mae"),
                save_best=False,
            )
        )
    booster = resumed
    if booster is None or done < args.num_round:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=args.num_round - done,
            evals=[(dtrain, "train"), (dvalid, "validation")],
            verbose_eval=False,
            xgb_model=resumed,
            callbacks=callbacks,
        )
    rounds = booster.num_boosted_rounds()
    best = _best_iteration(booster)
    if best is not None and best + 1 < rounds:
        print(f"early stopping: keeping the best {best + 1} of {rounds} rounds", flush=True)
        booster = booster[: best + 1]
        rounds = best + 1

    metrics = {
        "train": evaluate(booster, dtrain, "train"),
        "validation": evaluate(booster, dvalid, "validation"),
    }
    save(args, booster, names, params, rounds, metrics, progress.history)
    for data_name in ("train", "validation"):
        for metric, value in sorted(metrics[data_name].items()):
            print(f"{data_name}:{metric}={value:.6f}", flush=True)
    return metrics


def _best_iteration(booster: xgb.Booster) -> int | None:
    value = booster.attr("best_iteration")
    return int(value) if value is not None else None


def save(
    args: argparse.Namespace,
    booster: xgb.Booster,
    names: list[str],
    params: dict[str, Any],
    rounds: int,
    metrics: dict[str, dict[str, float]],
    history: list[dict[str, Any]],
) -> None:
    os.makedirs(args.model_dir, exist_ok=True)
    with model_file_warnings_off():
        booster.save_model(os.path.join(args.model_dir, "xgboost-model"))
    with open(os.path.join(args.model_dir, "features.json"), "w") as handle:
        json.dump(
            {
                "features": names,
                "label": LABEL,
                "rounds": rounds,
                "params": params,
                "metrics": metrics,
            },
            handle,
            indent=2,
        )
    if args.metadata:
        for name in ("vocabulary.json", "baseline.json", "header.csv"):
            source = os.path.join(args.metadata, name)
            if os.path.isfile(source):
                shutil.copy(source, os.path.join(args.model_dir, name))
    os.makedirs(args.output_data_dir, exist_ok=True)
    with open(os.path.join(args.output_data_dir, "history.json"), "w") as handle:
        json.dump(history, handle)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
