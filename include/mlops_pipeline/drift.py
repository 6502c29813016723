"""Data drift of one scored day against the model's training baseline: population stability
index (PSI) per raw feature and for the score.

The baseline is what model_build stored with the package: preprocess's ``baseline.json``
(``DriftCheckBaselines.ModelDataQuality.Statistics``: per numeric column a histogram over
the training deciles, per categorical column its frequencies) and the score histogram of
the held-out test split in evaluate's ``evaluation.json`` (``score_distribution``). A day
is binned into the same bins, a chunk at a time (memory stays flat however large the
day), and compared bin by bin::

    PSI = sum((actual - expected) * ln(actual / expected))

with both shares floored at :data:`FLOOR` so an empty bin counts as rare, not infinite.
Conventionally below 0.1 is stable, 0.1-0.2 a moderate shift, above 0.2 a real one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FLOOR = 1e-4
OTHER = "__other__"  # preprocess's bucket for categories beyond its top 50
UNSEEN = "__unseen__"  # values the training data never had
SCORE = "score"


class BaselineError(ValueError):
    """The baseline lacks what drift detection needs; the message names the field."""


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = FLOOR) -> float:
    """Population stability index of two distributions over the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"PSI needs the same bins: {len(expected)} expected, {len(actual)} actual")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(float(e), floor), max(float(a), floor)
        total += (a - e) * math.log(a / e)
    return total


def shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total for c in counts] if total else [0.0] * len(counts)


class NumericBins:
    """Counts of a numeric column in a baseline histogram's bins, chunk by chunk.

    The bins are preprocess's: right-closed, (-inf, e1], (e1, e2], ..., (ek, +inf).
    Missing values are left out, as the baseline leaves them out.
    """

    def __init__(self, histogram: Mapping[str, Any], where: str):
        try:
            self.edges = [float(e) for e in histogram["edges"]]
            self.expected = [float(f) for f in histogram["fractions"]]
        except (KeyError, TypeError, ValueError):
            raise BaselineError(f"{where} has no histogram (edges and fractions)") from None
        if len(self.expected) != len(self.edges) + 1:
            raise BaselineError(
                f"{where}: {len(self.edges)} edges need {len(self.edges) + 1} fractions, "
                f"found {len(self.expected)}"
            )
        self.counts = [0] * len(self.expected)

    def add(self, values: np.ndarray | pd.Series) -> None:
        import numpy as np

        array = np.asarray(values, dtype=float)
        array = array[~np.isnan(array)]
        bins = np.searchsorted(np.asarray(self.edges), array, side="left")
        for i, count in enumerate(np.bincount(bins, minlength=len(self.counts))):
            self.counts[i] += int(count)

    @property
    def rows(self) -> int:
        return sum(self.counts)

    def psi(self) -> float | None:
        return psi(self.expected, shares(self.counts)) if self.rows else None


class CategoryBins:
    """Counts of a categorical column against the baseline's category frequencies.

    Values the baseline folded into its ``__other__`` bucket count there; values it never
    saw count in an ``__unseen__`` bin whose expected share is the floor.
    """

    def __init__(self, frequencies: Mapping[str, float], where: str):
        if not frequencies:
            raise BaselineError(f"{where} has no category frequencies")
        self.expected = {str(k): float(v) for k, v in frequencies.items()}
        self.counts: dict[str, int] = dict.fromkeys(self.expected, 0)
        self.counts.setdefault(UNSEEN, 0)
        self.expected.setdefault(UNSEEN, 0.0)

    def add(self, values: pd.Series) -> None:
        fallback = OTHER if OTHER in self.expected else UNSEEN
        for value, count in values.dropna().astype(str).value_counts().items():
            key = str(value) if str(value) in self.expected else fallback
            self.counts[key] += int(count)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def psi(self) -> float | None:
        if not self.rows:
            return None
        keys = sorted(self.expected)
        return psi([self.expected[k] for k in keys], shares([self.counts[k] for k in keys]))


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature (and for the score, when the baseline has it) of one day."""

    partition: str
    threshold: float
    features: dict[str, float]
    score: float | None
    rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        values = [*self.features.values(), *([self.score] if self.score is not None else [])]
        return any(v > self.threshold for v in values)

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` features with the highest PSI, highest first (ties by name)."""
        return sorted(self.features.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def drifting(self) -> list[tuple[str, float]]:
        """Every feature over the threshold, highest first."""
        return [(k, v) for k, v in self.top(len(self.features)) if v > self.threshold]

    def summary(self, n: int = 3) -> str:
        top = ", ".join(f"{name} {value:.3f}" for name, value in self.top(n))
        score = "n/a" if self.score is None else f"{self.score:.3f}"
        verdict = "DRIFT" if self.drifted else "no drift"
        return (
            f"{verdict} on {self.partition} ({self.rows} rows, PSI threshold "
            f"{self.threshold:g}): score PSI {score}; top features: {top}"
        )

    def metrics(self) -> dict[str, Any]:
        """The history entry: PSI per feature and of the score, rounded for reading."""
        return {
            "row_count": self.rows,
            "psi": {k: round(v, 6) for k, v in sorted(self.features.items())},
            "score_psi": None if self.score is None else round(self.score, 6),
            "max_feature_psi": round(max(self.features.values(), default=0.0), 6),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "top_features": [name for name, _ in self.drifting()],
        }


class DriftMonitor:
    """Bins a day's raw rows and scores against a baseline, then reports the PSI."""

    def __init__(
        self,
        baseline: Mapping[str, Any],
        score_histogram: Mapping[str, Any] | None = None,
    ):
        numeric = baseline.get("numeric") or {}
        categorical = baseline.get("categorical") or {}
        if not numeric and not categorical:
            raise BaselineError(
                "the baseline has neither 'numeric' nor 'categorical' statistics: is it "
                "preprocess's baseline.json (DriftCheckBaselines.ModelDataQuality)?"
            )
        self.numeric = {
            column: NumericBins(stats.get("histogram") or {}, f"baseline numeric.{column}")
            for column, stats in numeric.items()
            if stats.get("count")
        }
        self.categorical = {
            column: CategoryBins(stats.get("frequencies") or {}, f"baseline categorical.{column}")
            for column, stats in categorical.items()
        }
        self.notes: list[str] = []
        self.score: NumericBins | None = None
        if score_histogram:
            self.score = NumericBins(score_histogram, "score_distribution")
        else:
            self.notes.append(
                "the model's evaluation has no score_distribution: score drift not checked"
            )

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def add_rows(self, frame: pd.DataFrame) -> None:
        import pandas as pd

        for column, bins in self.numeric.items():
            if column in frame:
                bins.add(pd.to_numeric(frame[column], errors="coerce"))
        for column, cats in self.categorical.items():
            if column in frame:
                cats.add(frame[column])

    def add_scores(self, scores: np.ndarray | pd.Series) -> None:
        if self.score is not None:
            self.score.add(scores)

    def report(self, partition: str, threshold: float) -> DriftReport:
        features: dict[str, float] = {}
        notes = list(self.notes)
        every: list[tuple[str, NumericBins | CategoryBins]] = [
            *self.numeric.items(),
            *self.categorical.items(),
        ]
        for column, bins in every:
            value = bins.psi()
            if value is None:
                notes.append(f"{column}: no values in the day's data, not compared")
            else:
                features[column] = value
        rows = max((b.rows for _, b in every), default=0)
        score = self.score.psi() if self.score is not None else None
        return DriftReport(partition, threshold, features, score, rows, notes)


def measure(
    baseline: Mapping[str, Any],
    score_histogram: Mapping[str, Any] | None,
    frames: Iterable[pd.DataFrame],
    scores: Iterable[np.ndarray | pd.Series],
    *,
    partition: str,
    threshold: float,
) -> DriftReport:
    """PSI of a day (raw rows and scores, each in chunks) against the baseline."""
    monitor = DriftMonitor(baseline, score_histogram)
    for frame in frames:
        monitor.add_rows(frame)
    for chunk in scores:
        monitor.add_scores(chunk)
    return monitor.report(partition, threshold)
