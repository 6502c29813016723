"""Population stability index against model_build's baselines, without Airflow or AWS."""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline import datagen, drift
from mlops_pipeline.containers import evaluate, preprocess

DAY = dt.date(2026, 3, 10)
ROWS = 20_000


def raw_day(day: dt.date, drift_strength: float = 0.0, seed: int = 3) -> pd.DataFrame:
    body = datagen.render_partition(day, ROWS, seed=seed, drift=drift_strength)
    return pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def baseline() -> dict:
    frames = [raw_day(DAY - dt.timedelta(days=i)).assign(_partition=None) for i in (7, 8)]
    train, _ = preprocess.clean(pd.concat(frames, ignore_index=True))
    vocabulary = preprocess.fit_vocabulary(train, 20)
    return preprocess.baseline(train, preprocess.engineer(train, vocabulary))


def test_psi_of_known_shares():
    assert drift.psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected, rel=1e-12)
    # an empty bin counts as rare (the floor), not as infinitely surprising
    assert math.isfinite(drift.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))
    with pytest.raises(ValueError, match="same bins"):
        drift.psi([1.0], [0.5, 0.5])


def test_numeric_bins_are_preprocess_right_closed_deciles():
    values = pd.Series(np.arange(1, 101, dtype=float))
    stats = preprocess.numeric_stats(values)
    bins = drift.NumericBins(stats["histogram"], "x")
    bins.add(values.iloc[:37])  # chunks add up to the whole
    bins.add(values.iloc[37:])
    assert bins.rows == 100
    assert drift.shares(bins.counts) == pytest.approx(stats["histogram"]["fractions"], abs=1e-8)
    assert bins.psi() == pytest.approx(0.0, abs=1e-9)
    bins.add(pd.Series([np.nan, np.nan]))  # missing values are not counted, as in the baseline
    assert bins.rows == 100


def test_unseen_categories_get_a_bin_of_their_own():
    bins = drift.CategoryBins({"pos": 0.5, "online": 0.5}, "channel")
    bins.add(pd.Series(["pos", "online", "telepathy", "telepathy"]))
    assert bins.counts == {"pos": 1, "online": 1, drift.UNSEEN: 2}
    assert bins.psi() > 1.0
    folded = drift.CategoryBins({"DE": 0.9, drift.OTHER: 0.1}, "country")
    folded.add(pd.Series(["DE"] * 9 + ["ZZ"]))
    assert folded.counts[drift.OTHER] == 1 and folded.psi() == pytest.approx(0.0, abs=1e-9)


def test_a_day_like_training_is_stable(baseline):
    report = drift.measure(
        baseline, None, [raw_day(DAY, seed=4)], [], partition=DAY.isoformat(), threshold=0.2
    )
    assert not report.drifted
    assert set(report.features) == {*preprocess.NUMERIC_RAW, *preprocess.CATEGORICAL_RAW}
    assert max(report.features.values()) < 0.05, report.features
    assert report.score is None and "score drift not checked" in report.notes[0]
    assert report.rows == ROWS


def test_datagen_drift_is_detected_and_named(baseline):
    day = raw_day(DAY, drift_strength=2.0, seed=4)
    chunks = [day.iloc[:7000], day.iloc[7000:]]
    report = drift.measure(baseline, None, chunks, [], partition=DAY.isoformat(), threshold=0.2)
    assert report.drifted
    # datagen's drift moves amounts up and the channel mix toward online
    assert {name for name, _ in report.top(2)} == {"amount", "channel"}
    assert [name for name, _ in report.drifting()][:2] == [name for name, _ in report.top(2)]
    assert "DRIFT on 2026-03-10" in report.summary()
    metrics = report.metrics()
    assert metrics["drifted"] is True and metrics["top_features"][:2] == [
        name for name, _ in report.top(2)
    ]


def test_score_drift_against_evaluate_score_distribution(baseline):
    rng = np.random.default_rng(0)
    reference = rng.beta(0.5, 10, 5000)
    histogram = evaluate.score_distribution(reference)
    same = drift.measure(
        baseline,
        histogram,
        [],
        [rng.beta(0.5, 10, 3000), rng.beta(0.5, 10, 3000)],
        partition="d",
        threshold=0.2,
    )
    assert same.score is not None and same.score < 0.05
    shifted = drift.measure(
        baseline, histogram, [], [rng.beta(2, 5, 6000)], partition="d", threshold=0.2
    )
    assert shifted.score is not None and shifted.score > 0.2 and shifted.drifted
    assert shifted.features == {}  # no rows given: nothing to compare per feature


def test_a_baseline_without_statistics_is_refused():
    with pytest.raises(drift.BaselineError, match="baseline.json"):
        drift.DriftMonitor({"dataset": "train"})
    with pytest.raises(drift.BaselineError, match="score_distribution"):
        drift.DriftMonitor(
            {"numeric": {}, "categorical": {"c": {"frequencies": {"a": 1}}}}, {"x": 1}
        )
