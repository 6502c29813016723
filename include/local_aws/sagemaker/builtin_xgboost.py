"""The built-in XGBoost algorithm: the XGBoost image trained without a script.

Run as a training job's process, in its private /opt/ml, under the algorithm's documented
contract: hyperparameters from /opt/ml/input/config/hyperparameters.json (``num_round``
required, every other one an XGBoost parameter), channels ``train`` (required) and
``validation`` in CSV (label in the first column, no header) or libsvm, chosen by the
channel's ContentType (libsvm when none is given), one evaluation line per round in the
form the algorithm logs (``[3]#011train-rmse:0.41#011validation-rmse:0.44``, the tab shown as
CloudWatch shows it), and the model saved as ``/opt/ml/model/xgboost-model``, which
``xgboost.Booster().load_model`` reads and local_aws's model server serves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

OPT_ML = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
# Hyperparameters that are SageMaker's, not XGBoost's parameters.
_NOT_PARAMS = ("num_round", "early_stopping_rounds", "csv_weights", "_tuning_objective_metric")
# The algorithm's metrics, for tuning without MetricDefinitions: <channel>:<eval metric>.
METRICS = (
    "rmse", "mae", "mape", "logloss", "error", "auc", "aucpr", "merror", "mlogloss", "map",
    "ndcg", "poisson-nloglik", "gamma-nloglik", "cox-nloglik", "tweedie-nloglik",
)  # fmt: skip
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_definitions() -> list[dict[str, str]]:
    """The regexes the algorithm's metrics are read with from its log."""
    return [
        {"Name": f"{channel}:{metric}", "Regex": rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}"}
        for channel in ("train", "validation")
        for metric in METRICS
    ]


class AlgorithmError(Exception):
    """Bad input for the algorithm; the message becomes the job's FailureReason."""


def _hyperparameters() -> dict[str, str]:
    raw = json.loads((OPT_ML / "input/config/hyperparameters.json").read_text())
    # the SDK JSON-encodes values ('"binary:logistic"'); boto3 users send them plain
    values = {}
    for key, value in raw.items():
        try:
            decoded = json.loads(value)
            values[key] = decoded if isinstance(decoded, str) else value
        except (TypeError, ValueError):
            values[key] = value
    return values


def _load(channel: str, content_type: str) -> Any:
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    folder = OPT_ML / "input/data" / channel
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise AlgorithmError(f"ClientError: channel {channel!r} has no data files")
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("text/csv", "csv"):
        frames = [pd.read_csv(f, header=None) for f in files]
        data = pd.concat(frames, ignore_index=True).to_numpy(dtype=np.float32)
        if data.shape[1] < 2:
            raise AlgorithmError(
                f"ClientError: channel {channel!r}: CSV needs the label in the first column "
                "and at least one feature after it"
            )
        return xgb.DMatrix(data[:, 1:], label=data[:, 0])
    if kind in ("text/libsvm", "libsvm", "text/x-libsvm"):
        import scipy.sparse
        from sklearn.datasets import load_svmlight_files

        loaded = load_svmlight_files([str(f) for f in files])
        features = scipy.sparse.vstack(loaded[0::2]).tocsr()
        labels = np.concatenate(loaded[1::2])
        return xgb.DMatrix(features, label=labels)
    raise AlgorithmError(
        f"ClientError: channel {channel!r}: content type {content_type!r} is not supported by "
        "the XGBoost algorithm; use text/csv or text/libsvm"
    )


def train() -> None:
    import xgboost as xgb

    hps = _hyperparameters()
    if "num_round" not in hps:
        raise AlgorithmError(
            "ClientError: Missing required hyperparameter: num_round (the number of boosting "
            "rounds)"
        )
    config = json.loads((OPT_ML / "input/config/inputdataconfig.json").read_text())
    if "train" not in config:
        raise AlgorithmError("ClientError: the XGBoost algorithm needs a 'train' channel")
    content = {c: v.get("ContentType", "text/libsvm") for c, v in config.items()}
    evals = [(_load("train", content["train"]), "train")]
    if "validation" in config:
        evals.append((_load("validation", content["validation"]), "validation"))
    params: dict[str, Any] = {
        k: v for k, v in hps.items() if k not in _NOT_PARAMS and not k.startswith("sagemaker")
    }
    # eval_metric may list several; a tuning job's objective (validation:auc) is added to them,
    # as the algorithm does, so the metric it tunes on is always logged
    wanted = [m for m in str(params.pop("eval_metric", "")).split(",") if m]
    objective = hps.get("_tuning_objective_metric", "")
    if ":" in objective and objective.split(":", 1)[1] not in wanted:
        wanted.append(objective.split(":", 1)[1])
    if wanted:
        params["eval_metric"] = wanted
    early = hps.get("early_stopping_rounds")

    class Log(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            scores = "".join(
                f"#011{data}-{metric}:{values[-1]:.5f}"
                for data, metrics in evals_log.items()
                for metric, values in metrics.items()
            )
            print(f"[{epoch}]{scores}", flush=True)
            return False

    try:
        booster = xgb.train(
            params,
            evals[0][0],
            num_boost_round=int(hps["num_round"]),
            evals=evals,
            early_stopping_rounds=int(early) if early and len(evals) > 1 else None,
            callbacks=[Log()],
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        raise AlgorithmError(f"ClientError: XGBoost refused the hyperparameters: {exc}") from exc
    model = OPT_ML / "model"
    model.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model / "xgboost-model"))


def main() -> int:
    try:
        train()
    except AlgorithmError as exc:
        (OPT_ML / "output").mkdir(parents=True, exist_ok=True)
        (OPT_ML / "output/failure").write_text(str(exc))
        print(exc, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
