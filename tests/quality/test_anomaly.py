"""Anomaly strategies (Deequ's semantics) and their translation into GX expectations."""

from __future__ import annotations

import math

import pytest

from mlops_pipeline.quality import anomaly
from mlops_pipeline.quality.anomaly import (
    AbsoluteChange,
    AnomalyConfigError,
    Bounds,
    NoBounds,
    OnlineNormal,
    RelativeRateOfChange,
    SimpleThreshold,
)
from mlops_pipeline.quality.suites import anomaly_path, project_root


def test_relative_rate_of_change_scales_the_previous_value():
    strategy = RelativeRateOfChange(max_rate_decrease=0.5, max_rate_increase=2.0)
    bounds = strategy.bounds([900.0, 1000.0])
    assert (bounds.lower, bounds.upper) == (500.0, 2000.0)
    assert not bounds.contains(400) and bounds.contains(1999)
    assert isinstance(strategy.bounds([]), NoBounds)


def test_relative_rate_of_change_on_a_negative_metric_keeps_lower_below_upper():
    bounds = RelativeRateOfChange(0.5, 2.0).bounds([-10.0])
    assert (bounds.lower, bounds.upper) == (-20.0, -5.0)


def test_absolute_change_uses_deequ_signs():
    bounds = AbsoluteChange(max_rate_decrease=-0.02, max_rate_increase=None).bounds([0.99])
    assert bounds.lower == pytest.approx(0.97) and bounds.upper is None
    with pytest.raises(AnomalyConfigError, match="max_rate_decrease is a change <= 0"):
        AbsoluteChange(max_rate_decrease=0.02)


def test_simple_threshold_needs_no_history():
    assert SimpleThreshold(1, 5).bounds([]) == Bounds(1, 5, "fixed threshold")
    with pytest.raises(AnomalyConfigError, match="lower_bound is above upper_bound"):
        SimpleThreshold(5, 1)


def test_online_normal_is_mean_plus_minus_k_sigma_of_the_history():
    history = [10.0, 12.0, 11.0, 9.0, 13.0, 11.0, 10.0, 12.0, 11.0, 11.0]
    bounds = OnlineNormal(2.0, 3.0, ignore_start_percentage=0.0, ignore_anomalies=False).bounds(
        history
    )
    mean = sum(history) / len(history)
    std = math.sqrt(sum((v - mean) ** 2 for v in history) / len(history))
    assert bounds.lower == pytest.approx(mean - 2 * std)
    assert bounds.upper == pytest.approx(mean + 3 * std)


def test_online_normal_leaves_earlier_anomalies_out_of_the_baseline():
    history = [10.0, 11.0] * 4 + [500.0, 10.0, 11.0]
    kept = OnlineNormal(ignore_start_percentage=0.0).bounds(history)
    assert kept.upper < 13  # the 500 spike did not widen the band
    widened = OnlineNormal(ignore_start_percentage=0.0, ignore_anomalies=False).bounds(history)
    assert widened.upper > 100


def test_online_normal_warm_up_and_minimum_history():
    assert "needs 7 earlier values, has 6" in OnlineNormal().bounds([1.0] * 6).reason
    # with half the series as warm-up, today's point (index 2 of 3) is still warming up
    assert (
        "warm-up"
        in OnlineNormal(ignore_start_percentage=0.9, min_history=1).bounds([1.0, 2.0]).reason
    )


def test_plan_turns_bounds_into_parameterised_expectations():
    config = anomaly.parse_config(
        {
            "dataset": "transactions",
            "checks": [
                {
                    "metric": "row_count",
                    "strategy": "relative_rate_of_change",
                    "max_rate_decrease": 0.5,
                    "max_rate_increase": 2,
                },
                {
                    "metric": "completeness",
                    "column": "distance_from_home_km",
                    "strategy": "absolute_change",
                    "max_rate_decrease": -0.02,
                    "severity": "warning",
                },
                {"metric": "mean", "column": "amount", "strategy": "online_normal"},
            ],
        }
    )
    history = [
        {"row_count": 1000, "columns": {"distance_from_home_km": {"completeness": 0.995}}},
        {"row_count": 1200, "columns": {"distance_from_home_km": {"completeness": 0.99}}},
    ]
    plan = anomaly.plan(config, history)

    rows, completeness = plan.expectations
    assert rows["type"] == "expect_table_row_count_to_be_between"
    assert rows["severity"] == "critical"
    assert plan.parameters[rows["kwargs"]["min_value"]["$PARAMETER"]] == 600
    assert plan.parameters[rows["kwargs"]["max_value"]["$PARAMETER"]] == 2400
    assert rows["meta"]["anomaly"]["history_points"] == 2
    assert completeness["type"] == "expect_column_values_to_not_be_null"
    assert completeness["severity"] == "warning"
    assert plan.parameters[completeness["kwargs"]["mostly"]["$PARAMETER"]] == pytest.approx(0.97)
    # the mean check has no history: skipped, and the report says why
    assert plan.notes[-1] == (
        "anomaly check mean(amount) (online_normal) skipped: needs 7 earlier values, has 0"
    )
    names = [p for p in plan.parameters]
    assert all(n.isidentifier() for n in names)


@pytest.mark.parametrize(
    "check, message",
    [
        ({"metric": "p99", "strategy": "simple_threshold"}, "metric 'p99' is not one of"),
        ({"metric": "mean", "strategy": "online_normal"}, "metric mean needs a column"),
        (
            {"metric": "row_count", "strategy": "holt_winters"},
            "strategy 'holt_winters' is not one of",
        ),
        (
            {"metric": "row_count", "strategy": "online_normal", "sigma": 3},
            "unexpected keyword argument 'sigma'",
        ),
        (
            {
                "metric": "row_count",
                "strategy": "simple_threshold",
                "lower_bound": 1,
                "severity": "fatal",
            },
            "severity 'fatal' is not one of error, warning, info",
        ),
        (
            {"metric": "quantile", "column": "a", "strategy": "simple_threshold", "upper_bound": 1},
            "needs quantile: <0..1>",
        ),
    ],
)
def test_config_errors_name_the_check(check, message):
    with pytest.raises(AnomalyConfigError, match="check 1") as info:
        anomaly.parse_config({"dataset": "d", "checks": [check]}, source="d.yml")
    assert message in str(info.value)


@pytest.mark.parametrize("dataset", ["transactions", "training_features", "predictions"])
def test_the_project_anomaly_files_parse(dataset):
    config = anomaly.load_config(str(anomaly_path(project_root(), dataset)))
    assert config.dataset == dataset and config.checks
