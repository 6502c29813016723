"""The canary plan: both notations, and an error naming the step and the fix for each rule."""

from __future__ import annotations

import pytest

from mlops_pipeline.deploy.plan import PlanError, Step, parse_plan


def test_the_short_notation():
    plan = parse_plan("10%:5m, 50%:10m, 100%", metric_period_seconds=60)
    assert plan.steps == (Step(10, 300), Step(50, 600), Step(100, 0))
    assert plan.describe() == "10% for 5 min → 50% for 10 min → 100%"


def test_json_with_seconds_and_units():
    plan = parse_plan(
        '[{"weight": 25, "bake": 2}, {"weight": "100%", "bake": "1.5s"}]', metric_period_seconds=1
    )
    assert plan.steps == (Step(25, 2.0), Step(100, 1.5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10%:5m,50%:10m", "the weights end at 50%, not 100%: add a last step of 100%"),
        ("50%:5m,10%:5m,100%", "step 2 (10%): weights must increase"),
        ("10%:5m,10%:5m,100%", "step 2 (10%): weights must increase"),
        ("10%:30s,100%", "step 1 (10%): bake 30 s is shorter than the metric period (1 min"),
        ("10%:5m,100%:10s", "step 2 (100%): bake 10 s is shorter than the metric period"),
        ("10%,100%", "step 1 (10%): bake 0 s is shorter than the metric period"),
        ("0%:5m,100%", "step 1 (0%): a weight is a percentage above 0"),
        ("10%:5m,100%:5m,100%", "only the last step may send 100%"),
        ("ten:5m,100%", "step 1: weight 'ten' is not a percentage"),
        ("12.5%:5m,100%", "must be a whole percentage"),
        ("10%:5 minutes,100%", "bake '5 minutes' is not a duration: write e.g. 30s, 5m or 1h"),
        ("", "MLOPS_DEPLOY_CANARY_PLAN is empty"),
        ("[{'weight': 10}]", "is not valid JSON"),
        ('[{"weight": 10, "wait": "5m"}, {"weight": 100}]', "unknown key(s) wait"),
    ],
)
def test_a_plan_that_cannot_run_is_refused_with_the_fix(text, message):
    with pytest.raises(PlanError) as error:
        parse_plan(text, metric_period_seconds=60)
    assert message in str(error.value)
    assert "MLOPS_DEPLOY_CANARY_PLAN" in str(error.value)


def test_native_mode_maps_canary_and_linear_plans():
    from mlops_pipeline.deploy.plan import native_deployment

    canary = native_deployment(parse_plan("10%:5m,100%", metric_period_seconds=60), ["a"], 3600)
    routing = canary["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        "WaitIntervalInSeconds": 300,
    }
    assert canary["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a"}]}
    linear = native_deployment(
        parse_plan("25%:1m,50%:1m,75%:1m,100%", metric_period_seconds=60), [], 3600
    )
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "LINEAR"
    with pytest.raises(PlanError, match="native mode .* takes one canary step then 100%"):
        native_deployment(parse_plan("10%:5m,50%:10m,100%", metric_period_seconds=60), [], 3600)
