"""The built-in Linear Learner algorithm (the ``linear-learner:1`` image), trained with
scikit-learn's stochastic gradient descent, epoch by epoch as the algorithm trains.

Training, under the algorithm's documented contract: ``predictor_type`` (binary_classifier |
multiclass_classifier | regressor) required, ``num_classes`` too for a multiclass
classifier, ``feature_dim`` (``auto``: the data's), and the optional ``epochs``,
``mini_batch_size``, ``loss`` (those the documentation lists for the predictor type:
logistic or hinge_loss; softmax_loss; squared_loss, absolute_loss, huber_loss,
eps_insensitive_squared_loss, eps_insensitive_absolute_loss, or quantile_loss at
``quantile``, trained by :mod:`.pinball`; hinge_loss at ``margin``), ``loss_insensitivity``,
``huber_delta``, ``wd``, ``l1``, ``learning_rate``, ``use_bias``,
``normalize_data``, ``normalize_label``, ``early_stopping_patience`` /
``early_stopping_tolerance``, ``positive_example_weight_mult``,
``balance_multiclass_weights``, ``binary_classifier_model_selection_criteria`` (the score
threshold is chosen on the validation data, else the training data), ``target_precision``,
``target_recall``, ``f_beta`` and ``accuracy_top_k``; ``num_models`` and the optimiser's
own knobs are accepted and left to scikit-learn. Channels ``train``, ``validation`` and
``test`` in CSV (label first) or RecordIO-protobuf, the default.

It logs, as the algorithm does, ``#quality_metric: host=algo-1, epoch=3, validation
binary_classification_cross_entropy_objective <loss>=0.31`` every epoch and, for the final
model, one ``#quality_metric: host=algo-1, validation <metric> <score>=...`` line per metric
(``test`` likewise): the metrics ``validation:objective_loss``,
``validation:binary_classification_accuracy`` ... of its documentation, for tuning.

Inference (:func:`load`): ``{"score": 0.8, "predicted_label": 1}`` (binary),
``{"score": [...], "predicted_label": 2}`` (multiclass), ``{"score": 4.2}`` (regressor).
"""

from __future__ import annotations

import math
import sys
from typing import Any

from local_aws.sagemaker.builtins.common import (
    HOST,
    RECORDIO,
    AlgorithmError,
    boolean,
    channels,
    check_width,
    choice,
    hyperparameters,
    integer,
    invalid,
    load_arrays,
    log,
    number,
    read_channel,
    require,
    run,
    save_arrays,
)
from local_aws.sagemaker.builtins.pinball import QuantileRegressor, pinball_loss

PREDICTORS = ("binary_classifier", "multiclass_classifier", "regressor")
# the losses the documentation lists for each predictor_type, ``auto`` being the first
LOSSES = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss",),
    "regressor": (
        "squared_loss", "absolute_loss", "eps_insensitive_squared_loss",
        "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss",
    ),
}  # fmt: skip
# loss -> scikit-learn's SGD loss (quantile_loss has none: :mod:`.pinball` trains it)
_CLASSIFIER_LOSSES = {"logistic": "log_loss", "softmax_loss": "log_loss", "hinge_loss": "hinge"}
_REGRESSOR_LOSSES = {
    "squared_loss": "squared_error",
    "absolute_loss": "epsilon_insensitive",
    "huber_loss": "huber",
    "eps_insensitive_squared_loss": "squared_epsilon_insensitive",
    "eps_insensitive_absolute_loss": "epsilon_insensitive",
}
_OBJECTIVE_NAME = {
    "logistic": "binary_classification_cross_entropy",
    "softmax_loss": "multiclass_cross_entropy",
    "hinge_loss": "hinge_loss",
    "squared_loss": "square_loss",
}
CRITERIA = (
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
)


class LinearModel:
    """Weights over normalised features, and how their output becomes a prediction."""

    def __init__(self, arrays: dict[str, Any]):
        import numpy as np

        self.weights = np.asarray(arrays["weights"], dtype=np.float64)  # (outputs, features)
        self.bias = np.asarray(arrays["bias"], dtype=np.float64)
        self.mean = np.asarray(arrays["mean"], dtype=np.float64)
        self.scale = np.asarray(arrays["scale"], dtype=np.float64)
        self.label_mean = float(arrays["label_mean"])
        self.label_scale = float(arrays["label_scale"])
        self.predictor_type = str(arrays["predictor_type"])
        self.loss = str(arrays["loss"])
        self.threshold = float(arrays["threshold"])
        self.feature_dim = self.weights.shape[1]

    def scores(self, features: Any) -> Any:
        """Probability of 1 (binary), of each class (multiclass), or the value (regressor)."""
        import numpy as np

        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        z = x @ self.weights.T + self.bias
        if self.predictor_type == "regressor":
            return z[:, 0] * self.label_scale + self.label_mean
        if self.predictor_type == "binary_classifier":
            return 1.0 / (1.0 + np.exp(-z[:, 0]))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, features: Any, *, verbose: bool = False) -> list[dict[str, Any]]:
        scores = self.scores(features)
        if self.predictor_type == "regressor":
            return [{"score": float(s)} for s in scores.tolist()]
        if self.predictor_type == "binary_classifier":
            return [
                {"score": float(s), "predicted_label": int(s >= self.threshold)}
                for s in scores.tolist()
            ]
        return [
            {"score": [float(v) for v in row], "predicted_label": int(row.argmax())}
            for row in scores
        ]


def load(model_dir: str) -> LinearModel:
    """The model server's model: the weights a training job saved."""
    return LinearModel(load_arrays(model_dir))


# -- metrics ----------------------------------------------------------------------------------
def objective_loss(loss: str, y: Any, output: Any, hps: dict[str, str]) -> float:
    """The mean of the training objective on (labels, model output)."""
    import numpy as np

    eps = 1e-15
    if loss == "logistic":
        p = np.clip(output, eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if loss == "softmax_loss":
        p = np.clip(output[np.arange(len(y)), y.astype(int)], eps, 1)
        return float(-np.mean(np.log(p)))
    if loss == "hinge_loss":  # binary only: the model's output is the sigmoid of its value
        value = np.log(np.clip(output, eps, 1 - eps) / np.clip(1 - output, eps, 1))
        return float(np.mean(np.maximum(0, hinge_margin(hps) - (2 * y - 1) * value)))
    if loss == "quantile_loss":
        return pinball_loss(quantile(hps), y, output)
    error = np.abs(output - y)
    epsilon = number(hps, "loss_insensitivity", 0.01)
    if loss == "absolute_loss":
        return float(np.mean(error))
    if loss == "huber_loss":
        delta = number(hps, "huber_delta", 1.0)
        return float(np.mean(np.where(error <= delta, 0.5 * error**2, delta * (error - delta / 2))))
    if loss == "eps_insensitive_squared_loss":
        return float(np.mean(np.maximum(0, error - epsilon) ** 2))
    if loss == "eps_insensitive_absolute_loss":
        return float(np.mean(np.maximum(0, error - epsilon)))
    return float(np.mean(error**2))


def _f_beta(precision: Any, recall: Any, beta: float) -> Any:
    import numpy as np

    b2 = beta * beta
    denominator = b2 * precision + recall
    return np.where(
        denominator > 0, (1 + b2) * precision * recall / np.maximum(denominator, 1e-300), 0.0
    )


def choose_threshold(y: Any, scores: Any, hps: dict[str, str]) -> float:
    """The score from which a record is labelled 1, by the model selection criterion."""
    import numpy as np

    criterion = choice(hps, "binary_classifier_model_selection_criteria", CRITERIA, "accuracy")
    if criterion == "loss_function" or len(y) == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last of each run of equal scores
    tp = np.cumsum(t)[last]
    fp = np.cumsum(1 - t)[last]
    thresholds = s[last]
    positives, n = t.sum(), len(t)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(positives, 1)
    if criterion == "accuracy":
        value = (tp + (n - positives - fp)) / n
    elif criterion == "f_beta":
        value = _f_beta(precision, recall, number(hps, "f_beta", 1.0))
    elif criterion == "precision_at_target_recall":
        value = np.where(recall >= number(hps, "target_recall", 0.8), precision, -1.0)
    else:
        value = np.where(precision >= number(hps, "target_precision", 0.8), recall, -1.0)
    if value.max() < 0:
        return 0.5
    return float(thresholds[int(np.argmax(value))])


def final_metrics(model: LinearModel, x: Any, y: Any, hps: dict[str, str]) -> dict[str, float]:
    import warnings

    import numpy as np
    from sklearn import metrics

    # top-k accuracy with k >= the classes is 1, as the algorithm reports it: no warning
    warnings.filterwarnings("ignore", category=metrics._ranking.UndefinedMetricWarning)
    scores = model.scores(x)
    found: dict[str, float] = {}
    if model.predictor_type == "regressor":
        found["mse"] = float(np.mean((scores - y) ** 2))
        found["rmse"] = math.sqrt(found["mse"])
        found["absolute_loss"] = float(np.mean(np.abs(scores - y)))
        return found
    beta = number(hps, "f_beta", 1.0)
    if model.predictor_type == "binary_classifier":
        predicted = (scores >= model.threshold).astype(int)
        found["binary_classification_accuracy"] = float(np.mean(predicted == y))
        found["precision"] = float(metrics.precision_score(y, predicted, zero_division=0))
        found["recall"] = float(metrics.recall_score(y, predicted, zero_division=0))
        found["binary_f_beta"] = float(
            metrics.fbeta_score(y, predicted, beta=beta, zero_division=0)
        )
        if len(np.unique(y)) == 2:
            found["roc_auc_score"] = float(metrics.roc_auc_score(y, scores))
        return found
    classes = np.arange(scores.shape[1])
    predicted = scores.argmax(axis=1)
    top_k = integer(hps, "accuracy_top_k", 3)
    found["multiclass_accuracy"] = float(np.mean(predicted == y))
    found["multiclass_top_k_accuracy"] = float(
        metrics.top_k_accuracy_score(y, scores, k=min(top_k, len(classes)), labels=classes)
    )
    for name, fn in (("macro_precision", metrics.precision_score), ("macro_recall", metrics.recall_score)):  # fmt: skip
        found[name] = float(fn(y, predicted, average="macro", labels=classes, zero_division=0))
    found["macro_f_beta"] = float(
        metrics.fbeta_score(
            y, predicted, beta=beta, average="macro", labels=classes, zero_division=0
        )
    )
    truth = (y[:, None] == classes[None, :]).astype(float)
    found["dcg"] = float(metrics.dcg_score(truth, scores))
    return found


# -- training ---------------------------------------------------------------------------------
def quantile(hps: dict[str, str]) -> float:
    value = number(hps, "quantile", 0.5)
    if not 0 < value < 1:
        raise invalid("quantile", hps.get("quantile"), "a number between 0 and 1")
    return value


def hinge_margin(hps: dict[str, str]) -> float:
    value = number(hps, "margin", 1.0)
    if not value > 0:
        raise invalid("margin", hps.get("margin"), "a positive number")
    return value


def choose_loss(predictor_type: str, hps: dict[str, str]) -> str:
    """The loss to train with: ``auto`` is the predictor type's default; a loss the
    documentation does not list for the predictor type is refused."""
    loss = hps.get("loss", "auto")
    allowed = LOSSES[predictor_type]
    if loss == "auto":
        return allowed[0]
    if loss not in allowed:
        raise invalid("loss", loss, f"one of {['auto', *allowed]} for a {predictor_type}")
    return loss


def _estimator(predictor_type: str, loss: str, hps: dict[str, str]) -> Any:
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    wd, l1 = number(hps, "wd", 0.0001), number(hps, "l1", 0.0)
    if loss == "hinge_loss":
        # max(0, m - y f) with f = m g is m * max(0, 1 - y g): scikit-learn's hinge (margin 1)
        # on g, with the L2 weight times m (the L1 weight unchanged); the weights are then
        # scaled by m (:func:`_output_scale`)
        wd *= hinge_margin(hps)
    if loss == "quantile_loss":
        rate = hps.get("learning_rate", "auto")
        return QuantileRegressor(
            quantile(hps),
            wd=wd,
            l1=l1,
            learning_rate=0.05 if rate == "auto" else number(hps, "learning_rate", 0.05),
            fit_intercept=boolean(hps, "use_bias", True),
        )
    if l1 > 0 and wd > 0:
        penalty, alpha, ratio = "elasticnet", wd + l1, l1 / (wd + l1)
    elif l1 > 0:
        penalty, alpha, ratio = "l1", l1, 0.15
    else:
        penalty, alpha, ratio = "l2", wd, 0.15
    rate = hps.get("learning_rate", "auto")
    # auto: a step that shrinks when an epoch stops improving, as the algorithm's scheduler
    schedule: dict[str, Any] = {"learning_rate": "adaptive", "eta0": 0.01}
    if rate != "auto":
        schedule = {"learning_rate": "constant", "eta0": number(hps, "learning_rate", 0.01)}
    common = {
        "penalty": penalty,
        "alpha": max(alpha, 1e-12),
        "l1_ratio": ratio,
        "fit_intercept": boolean(hps, "use_bias", True),
        "random_state": 0,
        **schedule,
    }
    if predictor_type == "regressor":
        epsilon = number(hps, "huber_delta" if loss == "huber_loss" else "loss_insensitivity",
                         1.0 if loss == "huber_loss" else 0.01)  # fmt: skip
        if loss == "absolute_loss":
            epsilon = 0.0
        return SGDRegressor(loss=_REGRESSOR_LOSSES[loss], epsilon=epsilon, **common)
    return SGDClassifier(loss=_CLASSIFIER_LOSSES[loss], **common)


def _output_scale(loss: str, hps: dict[str, str]) -> float:
    """What the estimator's weights are multiplied by to give the model's (see _estimator)."""
    return hinge_margin(hps) if loss == "hinge_loss" else 1.0


def _sample_weights(predictor_type: str, y: Any, hps: dict[str, str]) -> Any:
    import numpy as np

    weights = np.ones(len(y))
    if predictor_type == "binary_classifier":
        mult = hps.get("positive_example_weight_mult", "1.0")
        if mult in ("balanced", "auto"):  # errors on either class weigh the same in total
            positives = max(float(y.sum()), 1.0)
            value = (len(y) - positives) / positives
        else:
            value = number(hps, "positive_example_weight_mult", 1.0)
        weights[y == 1] = value
    elif predictor_type == "multiclass_classifier" and boolean(
        hps, "balance_multiclass_weights", False
    ):
        classes, counts = np.unique(y, return_counts=True)
        per_class = dict(
            zip(classes.tolist(), (len(y) / (len(classes) * counts)).tolist(), strict=True)
        )
        weights = np.array([per_class[v] for v in y.tolist()])
    return weights


def train() -> None:
    import numpy as np

    hps = hyperparameters()
    require(hps, ["predictor_type"])
    predictor_type = choice(hps, "predictor_type", PREDICTORS, "")
    num_classes = 2
    if predictor_type == "multiclass_classifier":
        require(hps, ["num_classes"])
        num_classes = integer(hps, "num_classes", low=3)
    feature_dim = None if hps.get("feature_dim", "auto") == "auto" else integer(hps, "feature_dim")
    loss = choose_loss(predictor_type, hps)
    epochs = integer(hps, "epochs", 15)
    batch = integer(hps, "mini_batch_size", 1000)
    patience = integer(hps, "early_stopping_patience", 3)
    tolerance = number(hps, "early_stopping_tolerance", 0.001)
    config = channels()
    if "train" not in config:
        raise AlgorithmError("ClientError: the Linear Learner algorithm needs a 'train' channel")

    def load_channel(channel: str) -> tuple[Any, Any]:
        x, y = read_channel(channel, config[channel].get("ContentType", RECORDIO))
        x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
        check_width(x, feature_dim, channel)
        if np.isnan(y).any():
            raise AlgorithmError(f"ClientError: channel {channel!r}: every record needs a label")
        if predictor_type != "regressor":
            bad = ~np.isin(y, np.arange(num_classes))
            if bad.any():
                raise AlgorithmError(
                    f"ClientError: channel {channel!r}: label {y[bad][0]:g} is not a class of a "
                    f"{predictor_type}: labels must be the integers 0 to {num_classes - 1}"
                )
        return x, y

    x, y = load_channel("train")
    held_out = {c: load_channel(c) for c in ("validation", "test") if c in config}
    if held_out and any(v[0].shape[1] != x.shape[1] for v in held_out.values()):
        raise AlgorithmError(
            "ClientError: the train, validation and test channels have different numbers of "
            "features"
        )
    normalize = boolean(hps, "normalize_data", True)
    mean = x.mean(axis=0) if normalize else np.zeros(x.shape[1])
    scale = x.std(axis=0) if normalize else np.ones(x.shape[1])
    scale[scale == 0] = 1.0
    label_mean, label_scale = 0.0, 1.0
    if predictor_type == "regressor" and boolean(hps, "normalize_label", True):
        label_mean, label_scale = float(y.mean()), float(y.std() or 1.0)
    xs = (x - mean) / scale
    target = (y - label_mean) / label_scale if predictor_type == "regressor" else y.astype(int)
    weights = _sample_weights(predictor_type, y, hps)
    estimator = _estimator(predictor_type, loss, hps)
    output_scale = _output_scale(loss, hps)
    objective = f"{_OBJECTIVE_NAME.get(loss, loss)}_objective"
    rng = np.random.default_rng(0)

    def snapshot(threshold: float = 0.5) -> LinearModel:
        # copies: partial_fit updates the estimator's arrays in place
        coef = np.atleast_2d(estimator.coef_) * output_scale
        bias = np.atleast_1d(estimator.intercept_) * output_scale
        return LinearModel(
            {
                "weights": coef, "bias": bias, "mean": mean, "scale": scale,
                "label_mean": label_mean, "label_scale": label_scale,
                "predictor_type": predictor_type, "loss": loss, "threshold": threshold,
            }
        )  # fmt: skip

    best: tuple[float, LinearModel] | None = None
    stale = 0
    classes = np.arange(num_classes)
    watched = "validation" if "validation" in held_out else "train"
    for epoch in range(epochs):
        order = rng.permutation(len(xs))
        for start in range(0, len(order), batch):
            part = order[start : start + batch]
            fit_args = {"classes": classes} if predictor_type != "regressor" else {}
            estimator.partial_fit(xs[part], target[part], sample_weight=weights[part], **fit_args)
        model = snapshot()
        losses = {"train": objective_loss(loss, y, model.scores(x), hps)}
        if "validation" in held_out:
            vx, vy = held_out["validation"]
            losses["validation"] = objective_loss(loss, vy, model.scores(vx), hps)
        for channel, value in losses.items():
            log(
                f"#quality_metric: host={HOST}, epoch={epoch}, {channel} {objective} <loss>={value!r}"
            )
        current = losses[watched]
        if best is None or current < best[0] * (1 - tolerance) or not math.isfinite(best[0]):
            best, stale = (current, model), 0
        else:
            stale += 1
            if stale >= patience:
                log(f"Early stop condition met. Stopping training at epoch {epoch}.")
                break
    assert best is not None
    model = best[1]
    if predictor_type == "binary_classifier":
        cx, cy = held_out.get("validation", (x, y))
        threshold = choose_threshold(cy, model.scores(cx), hps)
        model = LinearModel({**_arrays(model), "threshold": threshold})
    save_arrays(_arrays(model))
    for channel, (cx, cy) in held_out.items():
        value = objective_loss(loss, cy, model.scores(cx), hps)
        log(f"#quality_metric: host={HOST}, {channel} {objective} <loss>={value!r}")
        for name, score in final_metrics(model, cx, cy, hps).items():
            log(f"#quality_metric: host={HOST}, {channel} {name} <score>={score!r}")


def _arrays(model: LinearModel) -> dict[str, Any]:
    import numpy as np

    return {
        "weights": model.weights, "bias": model.bias, "mean": model.mean, "scale": model.scale,
        "label_mean": np.array(model.label_mean), "label_scale": np.array(model.label_scale),
        "predictor_type": np.array(model.predictor_type), "loss": np.array(model.loss),
        "threshold": np.array(model.threshold),
    }  # fmt: skip


def main() -> int:
    return run(train)


if __name__ == "__main__":
    sys.exit(main())
