"""The built-in XGBoost algorithm: the XGBoost image trained without a script.

Run as a training job's process, in its private /opt/ml, under the algorithm's documented
contract: hyperparameters ``num_round`` (required) and every XGBoost parameter, channels
``train`` (required) and ``validation`` in CSV (label in the first column, no header) or
libsvm, chosen by the channel's ContentType (libsvm when none is given), one evaluation line
per round in the form the algorithm logs (``[3]#011train-rmse:0.41#011validation-rmse:0.44``,
the tab shown as CloudWatch shows it), and the model saved as ``/opt/ml/model/xgboost-model``,
which ``xgboost.Booster().load_model`` reads and local_aws's model server serves.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from local_aws.sagemaker.builtins.common import (
    AlgorithmError,
    base_dir,
    channels,
    hyperparameters,
    read_channel,
    run,
)

# Hyperparameters that are SageMaker's, not XGBoost's parameters.
_NOT_PARAMS = ("num_round", "early_stopping_rounds", "csv_weights", "_tuning_objective_metric")


def _load(channel: str, content_type: str) -> Any:
    import xgboost as xgb

    features, labels = read_channel(channel, content_type)
    return xgb.DMatrix(features, label=labels)


def train() -> None:
    import xgboost as xgb

    hps = hyperparameters()
    if "num_round" not in hps:
        raise AlgorithmError(
            "ClientError: Missing required hyperparameter: num_round (the number of boosting "
            "rounds)"
        )
    config = channels()
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
    model = base_dir() / "model"
    model.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the name is AWS's, extension-less: UBJSON, as it warns
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(str(model / "xgboost-model"))


def main() -> int:
    return run(train)


if __name__ == "__main__":
    sys.exit(main())
