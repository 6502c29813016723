"""SageMaker's built-in algorithms, reached by image URI with no script: which image is which
algorithm, and what the server needs to know of each (its module, its metrics).

Light on purpose: the server imports this; the algorithms' own modules import numpy,
scikit-learn and XGBoost, and run in the training job's process (forked from the warm
trainer, :mod:`local_aws.sagemaker.warm`) or in the model server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_aws.sagemaker import images

_NUMBER = r"([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf))"


@dataclass(frozen=True)
class Algorithm:
    name: str  # as sagemaker.image_uris.retrieve names it
    repository: str  # the image's repository
    module: str  # the training module: its main() runs the job in the job's /opt/ml
    metrics: tuple[tuple[str, str], ...]  # (metric name, regex on the job's log)
    # the model server's handlers (None: the framework server's own, as for XGBoost)
    serving: str | None = None

    def metric_definitions(self) -> list[dict[str, str]]:
        """What the algorithm logs, as MetricDefinitions: tuning needs none of its own."""
        return [{"Name": name, "Regex": regex} for name, regex in self.metrics]


def _xgboost_metrics() -> tuple[tuple[str, str], ...]:
    names = (
        "rmse", "mae", "mape", "logloss", "error", "auc", "aucpr", "merror", "mlogloss", "map",
        "ndcg", "poisson-nloglik", "gamma-nloglik", "cox-nloglik", "tweedie-nloglik",
    )  # fmt: skip
    return tuple(
        (f"{channel}:{metric}", rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}")
        for channel in ("train", "validation")
        for metric in names
    )


def _knn_metrics() -> tuple[tuple[str, str], ...]:
    # the algorithm's line: "#test_score (algo-1) : ('accuracy', 0.98)"
    return tuple(
        (f"test:{name}", rf"#test_score \(algo-1\) : \('{name}', {_NUMBER}\)")
        for name in ("accuracy", "mse")
    )


LINEAR_LEARNER_SCORES = (
    "absolute_loss", "binary_classification_accuracy", "binary_f_beta", "dcg", "macro_f_beta",
    "macro_precision", "macro_recall", "mse", "rmse", "multiclass_accuracy",
    "multiclass_top_k_accuracy", "precision", "recall", "roc_auc_score",
)  # fmt: skip


def _linear_learner_metrics() -> tuple[tuple[str, str], ...]:
    # the algorithm's lines: "#quality_metric: host=algo-1, validation recall <score>=0.8",
    # and for the loss "... validation binary_classification_cross_entropy_objective <loss>=0.3"
    found = []
    for channel in ("validation", "test"):
        found.append(
            (
                f"{channel}:objective_loss",
                # every epoch's too (validation), the final model's last
                rf"#quality_metric: host=\S+, (?:epoch=\S+, )?{channel} \S+_objective "
                rf"<loss>={_NUMBER}",
            )
        )
        found += [
            (f"{channel}:{name}", rf"#quality_metric: host=\S+, {channel} {name} <score>={_NUMBER}")
            for name in LINEAR_LEARNER_SCORES
        ]
    return tuple(found)


_PACKAGE = __name__
ALGORITHMS = (
    Algorithm("xgboost", "sagemaker-xgboost", f"{_PACKAGE}.xgboost_algorithm", _xgboost_metrics()),
    Algorithm("knn", "knn", f"{_PACKAGE}.knn", _knn_metrics(), serving=f"{_PACKAGE}.knn"),
    Algorithm(
        "linear-learner",
        "linear-learner",
        f"{_PACKAGE}.linear_learner",
        _linear_learner_metrics(),
        serving=f"{_PACKAGE}.linear_learner",
    ),
)
_BY_REPOSITORY = {a.repository: a for a in ALGORITHMS}
# the framework images run a user's script when given one; the others are algorithms only
_FRAMEWORK = frozenset({"sagemaker-xgboost"})
REPOSITORIES = frozenset(_BY_REPOSITORY)


def for_image(image: str) -> Algorithm | None:
    return _BY_REPOSITORY.get(images.repository(image))


def for_job(algorithm_spec: dict[str, Any], hyperparameters: dict[str, Any]) -> Algorithm | None:
    """The built-in algorithm a training job runs, if any: an algorithm image, or the XGBoost
    image with no script (``sagemaker_program``) and no ContainerEntrypoint."""
    found = for_image(algorithm_spec.get("TrainingImage", ""))
    if found is None:
        return None
    if found.repository in _FRAMEWORK and (
        "sagemaker_program" in hyperparameters or algorithm_spec.get("ContainerEntrypoint")
    ):
        return None
    return found


def for_model(image: str) -> Algorithm | None:
    """The algorithm whose own inference handlers serve a model of this image, if any."""
    found = for_image(image)
    return found if found is not None and found.serving else None


def preload_modules() -> list[str]:
    """What the warm trainer imports once so a built-in job does not pay for it."""
    return ["numpy", "pandas", "scipy.sparse", "sklearn.linear_model", "sklearn.neighbors",
            "sklearn.metrics", "sklearn.preprocessing", "sklearn.datasets", "xgboost",
            *(a.module for a in ALGORITHMS)]  # fmt: skip
