"""The built-in k-NN algorithm (the ``knn:1`` image), with scikit-learn's exact neighbour search.

Training, under the algorithm's documented contract: hyperparameters ``feature_dim``, ``k``,
``predictor_type`` (classifier | regressor) and ``sample_size`` required (a sample larger
than the data takes all of it, as on AWS), ``dimension_reduction_type`` (sign | fjlt) with
``dimension_reduction_target``, ``index_metric`` (L2 | INNER_PRODUCT | COSINE),
``index_type`` and ``mini_batch_size`` accepted (every index type searches exactly here,
where the algorithm's faiss indexes may approximate). Channels ``train`` and optional
``test``, in CSV (label first) or RecordIO-protobuf, the default. With a test channel the
algorithm logs ``#test_score (algo-1) : ('accuracy', 0.98)`` (``mse`` for a regressor),
which become the metrics ``test:accuracy`` / ``test:mse``. The model, ``model_algo-1``, holds
the sampled points and their labels.

Inference (:func:`load`): the ``k`` nearest points' labels vote (classifier; a tie goes to
the nearest of the tied labels) or average (regressor); verbose answers add ``distances``
(as the algorithm's index ranks them: squared L2, 1 - cosine similarity, or the negated
inner product, smallest first) and ``labels``.
"""

from __future__ import annotations

import sys
from typing import Any

from local_aws.sagemaker.builtins.common import (
    HOST,
    RECORDIO,
    AlgorithmError,
    channels,
    check_width,
    choice,
    hyperparameters,
    integer,
    invalid,
    load_arrays,
    log,
    read_channel,
    require,
    run,
    save_arrays,
)

REQUIRED = ("feature_dim", "k", "predictor_type", "sample_size")
METRICS = ("L2", "INNER_PRODUCT", "COSINE")


class Index:
    """The sampled points and their labels, searched exactly."""

    def __init__(
        self,
        points: Any,
        labels: Any,
        *,
        k: int,
        predictor_type: str,
        metric: str,
        projection: Any = None,
    ):
        import numpy as np

        self.points = np.asarray(points, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.k = min(k, len(self.points))
        self.predictor_type = predictor_type
        self.metric = metric
        self.projection = projection  # (target, feature_dim) or None
        self.feature_dim = self.points.shape[1] if projection is None else projection.shape[1]
        self._neighbours = None
        if metric != "INNER_PRODUCT":  # scikit-learn has no maximum-inner-product search
            from sklearn.neighbors import NearestNeighbors

            self._neighbours = NearestNeighbors(
                n_neighbors=self.k, metric="euclidean" if metric == "L2" else "cosine"
            ).fit(self.points)

    def arrays(self) -> dict[str, Any]:
        import numpy as np

        found = {
            "points": self.points,
            "labels": self.labels,
            "k": np.array(self.k),
            "predictor_type": np.array(self.predictor_type),
            "index_metric": np.array(self.metric),
        }
        if self.projection is not None:
            found["projection"] = self.projection
        return found

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Index:
        return cls(
            arrays["points"],
            arrays["labels"],
            k=int(arrays["k"]),
            predictor_type=str(arrays["predictor_type"]),
            metric=str(arrays["index_metric"]),
            projection=arrays.get("projection"),
        )

    def search(self, features: Any) -> tuple[Any, Any]:
        """(distances, indices) of each row's k nearest points, nearest first."""
        import numpy as np

        x = np.asarray(features, dtype=np.float32)
        if self.projection is not None:
            x = x @ self.projection.T
        if self._neighbours is None:
            scores = -(x @ self.points.T)
            order = np.argsort(scores, axis=1, kind="stable")[:, : self.k]
            return np.take_along_axis(scores, order, axis=1), order
        distances, order = self._neighbours.kneighbors(x)
        if self.metric == "L2":
            distances = distances**2  # faiss's flat L2 index reports squared distances
        return distances, order

    def predict(self, features: Any, *, verbose: bool = False) -> list[dict[str, Any]]:
        import numpy as np

        distances, order = self.search(features)
        neighbour_labels = self.labels[order]
        if self.predictor_type == "regressor":
            predicted = neighbour_labels.mean(axis=1)
        else:
            predicted = np.array([_vote(row) for row in neighbour_labels])
        answers: list[dict[str, Any]] = []
        for i, label in enumerate(predicted.tolist()):
            answer: dict[str, Any] = {"predicted_label": float(label)}
            if verbose:
                answer["distances"] = [float(d) for d in distances[i]]
                answer["labels"] = [float(v) for v in neighbour_labels[i]]
            answers.append(answer)
        return answers


def _vote(labels: Any) -> float:
    counts: dict[float, int] = {}
    for label in labels.tolist():  # nearest first: among equal counts the first seen wins
        counts[label] = counts.get(label, 0) + 1
    return max(counts, key=lambda label: counts[label])


def load(model_dir: str) -> Index:
    """The model server's model: the index a training job saved."""
    return Index.from_arrays(load_arrays(model_dir))


def _projection(hps: dict[str, str], features: Any, feature_dim: int) -> Any:
    reduction = hps.get("dimension_reduction_type")
    if reduction in (None, "", "None"):
        return None
    choice(hps, "dimension_reduction_type", ("sign", "fjlt"), "sign")
    require(hps, ["dimension_reduction_target"])
    target = integer(hps, "dimension_reduction_target")
    if target >= feature_dim:
        raise invalid(
            "dimension_reduction_target", hps["dimension_reduction_target"],
            f"a number between 0 and feature_dim ({feature_dim}), exclusive",
        )  # fmt: skip
    import numpy as np
    from sklearn.random_projection import GaussianRandomProjection, SparseRandomProjection

    # sign: a dense random-sign projection; fjlt: its Gaussian form (the fast transform
    # computes such a projection quickly, with the same distance guarantees)
    projector = (
        SparseRandomProjection(n_components=target, density=1.0, random_state=0)
        if reduction == "sign"
        else GaussianRandomProjection(n_components=target, random_state=0)
    )
    projector.fit(features)
    components = projector.components_
    dense = components.toarray() if hasattr(components, "toarray") else components
    return np.asarray(dense, dtype=np.float32)


def train() -> None:
    import numpy as np

    hps = hyperparameters()
    require(hps, REQUIRED)
    feature_dim = integer(hps, "feature_dim")
    k = integer(hps, "k")
    predictor_type = choice(hps, "predictor_type", ("classifier", "regressor"), "")
    sample_size = integer(hps, "sample_size")
    integer(hps, "mini_batch_size", 5000)
    metric = choice(hps, "index_metric", METRICS, "L2")
    index_type = choice(
        hps, "index_type", ("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ"), "faiss.Flat"
    )
    if index_type == "faiss.IVFPQ" and metric != "L2":
        raise invalid("index_metric", metric, "L2 when index_type is faiss.IVFPQ")
    config = channels()
    if "train" not in config:
        raise AlgorithmError("ClientError: the k-NN algorithm needs a 'train' channel")

    def dense(channel: str) -> tuple[Any, Any]:
        x, y = read_channel(channel, config[channel].get("ContentType", RECORDIO))
        x = x.toarray() if hasattr(x, "toarray") else x
        check_width(x, feature_dim, channel)
        if np.isnan(y).any():
            raise AlgorithmError(f"ClientError: channel {channel!r}: every record needs a label")
        return x, y

    features, labels = dense("train")
    if sample_size < len(features):
        chosen = np.random.default_rng(0).choice(len(features), sample_size, replace=False)
        features, labels = features[chosen], labels[chosen]
    projection = _projection(hps, features, feature_dim)
    points = features if projection is None else features @ projection.T
    log(f"#train_data ({HOST}) : indexed {len(points)} points of dimension {points.shape[1]}")
    index = Index(
        points, labels, k=k, predictor_type=predictor_type, metric=metric, projection=projection
    )
    save_arrays(index.arrays())
    if "test" in config:
        x, y = dense("test")
        predicted = np.array([p["predicted_label"] for p in index.predict(x)])
        if predictor_type == "classifier":
            name, score = "accuracy", float(np.mean(predicted == y))
        else:
            name, score = "mse", float(np.mean((predicted - y) ** 2))
        log(f"#test_score ({HOST}) : ('{name}', {score!r})")


def main() -> int:
    return run(train)


if __name__ == "__main__":
    sys.exit(main())
