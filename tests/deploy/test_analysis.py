"""Canary analysis on per-variant datapoints: bounds, no data, and the verdict's words."""

from __future__ import annotations

import pytest

from mlops_pipeline.config import SettingsError, load_settings, replace
from mlops_pipeline.deploy.analysis import Bounds, VariantStats, analyse, variant_stats

BOUNDS = Bounds(
    min_invocations=20,
    max_error_rate_increase=0.01,
    max_latency_ratio=1.5,
    latency_slack_ms=5.0,
    max_latency_ms=1000.0,
)
HEALTHY = VariantStats(invocations=100, errors_5xx=0, latency_ms=10.0)


def test_datapoints_add_up_per_window():
    stats = variant_stats(
        {
            "Invocations": [{"Sum": 30.0}, {"Sum": 10.0}],
            "Invocation5XXErrors": [{"Sum": 4.0}, {"Sum": 0.0}],
            # microseconds: (30 × 2000 + 10 × 6000) / 40 calls = 3 ms
            "ModelLatency": [
                {"Sum": 60000.0, "SampleCount": 30},
                {"Sum": 60000, "SampleCount": 10},
            ],
        }
    )
    assert stats.invocations == 40 and stats.errors_5xx == 4
    assert stats.error_rate == pytest.approx(0.1, abs=1e-12)
    assert stats.latency_ms == pytest.approx(3.0, abs=1e-9)


def test_no_datapoints_is_no_data():
    stats = variant_stats({})
    assert (stats.invocations, stats.error_rate, stats.latency_ms) == (0, None, None)


def test_a_healthy_candidate_passes_every_check():
    verdict = analyse(1, 10, VariantStats(50, 0, 12.0), HEALTHY, BOUNDS)
    assert verdict.passed and verdict.failed is None
    assert [c.metric for c in verdict.checks] == [
        "Invocations",
        "Invocation5XXErrors rate",
        "ModelLatency ms (relative)",
        "ModelLatency ms (absolute)",
    ]
    assert verdict.reason() == "step 1 (10%) passed"


def test_5xx_above_the_baseline_fails_naming_value_and_bound():
    verdict = analyse(1, 10, VariantStats(40, 20, 10.0), VariantStats(400, 4, 10.0), BOUNDS)
    assert not verdict.passed
    check = verdict.failed
    assert check is not None and check.metric == "Invocation5XXErrors rate"
    assert check.value == pytest.approx(0.5) and check.bound == pytest.approx(0.02)
    assert verdict.reason() == (
        "step 1 (10%): Invocation5XXErrors rate = 0.5, bound 0.02 "
        "(at most the baseline's 0.01 + 0.01)"
    )


def test_a_slow_candidate_fails_on_latency_relative_to_the_baseline():
    verdict = analyse(2, 50, VariantStats(50, 0, 40.0), HEALTHY, BOUNDS)
    check = verdict.failed
    assert check is not None and check.metric == "ModelLatency ms (relative)"
    assert check.bound == pytest.approx(10.0 * 1.5 + 5.0)


def test_absolute_latency_bound_holds_without_a_baseline():
    verdict = analyse(3, 100, VariantStats(50, 0, 1500.0), None, BOUNDS)
    check = verdict.failed
    assert check is not None and check.metric == "ModelLatency ms (absolute)"
    assert [c.metric for c in verdict.checks if "relative" in c.metric] == []


@pytest.mark.parametrize("calls", [0, 19])
def test_too_few_calls_or_none_fail(calls):
    verdict = analyse(1, 10, VariantStats(calls, 0, 10.0 if calls else None), HEALTHY, BOUNDS)
    assert verdict.failed is not None and verdict.failed.metric == "Invocations"
    if not calls:  # every metric check fails on no data: nothing passes by default
        assert all(not c.passed for c in verdict.checks)
        assert "no data" in verdict.checks[1].text()


def test_bounds_come_from_settings_and_are_checked():
    settings = load_settings({})
    assert Bounds.from_settings(settings).min_invocations == settings.deploy_min_invocations
    with pytest.raises(SettingsError, match="MLOPS_DEPLOY_MAX_LATENCY_RATIO=0.5: it must be"):
        Bounds.from_settings(replace(settings, deploy_max_latency_ratio=0.5))
