"""The release record: steps, verdicts, the failure budget and a JSON round trip."""

from __future__ import annotations

import json

from mlops_pipeline.deploy.plan import parse_plan
from mlops_pipeline.deploy.release import Release, Variant, new_release, next_step, step_lines

PLAN = parse_plan("10%:2s,50%:2s,100%", metric_period_seconds=1)


def release(budget: int = 0) -> Release:
    return new_release(
        release_id="r1",
        endpoint="card-fraud",
        candidate=Variant("v2", "m2", "arn:pkg/2", "c2"),
        baseline=Variant("v1", "m1", "arn:pkg/1", "c1"),
        plan=PLAN,
        bounds={},
        canary_config="canary",
        failure_budget=budget,
        now=100.0,
    )


PASS = {"passed": True, "reason": "ok"}
FAIL = {"passed": False, "reason": "step 1 (10%): Invocation5XXErrors rate = 0.5, bound 0.01"}


def test_a_release_walks_its_plan_to_promotion():
    r = release()
    moves = []
    index = next_step(r)
    while index is not None:
        r.begin_step(index, 100.0 + index)
        assert r.status == "shifting"
        r.serving(101.0 + index)
        assert (
            r.current is not None
            and r.current.bake_until == 101.0 + index + PLAN.steps[index - 1].bake_seconds
        )
        if r.current.bake_seconds:
            moves.append(r.judge(PASS, {}, 110.0 + index))
        index = next_step(r)
    assert moves == ["next", "next"]
    assert [s.weight for s in r.steps] == [10, 50, 100]
    assert r.weights(50) == {"v2": 50, "v1": 50}


def test_a_failure_beyond_the_budget_rolls_back_with_the_reason():
    r = release()
    r.begin_step(1, 1.0)
    r.serving(2.0)
    assert r.judge(FAIL, {"v2": {"invocations": 4}}, 5.0) == "rollback"
    assert r.status == "rolling_back" and r.reason == FAIL["reason"]


def test_the_budget_rebakes_the_step_once():
    r = release(budget=1)
    r.begin_step(1, 1.0)
    r.serving(2.0)
    assert r.judge(FAIL, {}, 5.0) == "rebake"
    assert r.judge(FAIL, {}, 9.0) == "rollback"


def test_the_record_survives_json():
    r = release()
    r.begin_step(1, 1.0)
    r.serving(2.0)
    r.judge(PASS, {"v2": {"invocations": 30, "error_rate": 0.0, "latency_ms": 1.5}}, 5.0)
    again = Release.from_json(json.loads(json.dumps(r.to_json())))
    assert again == r
    assert step_lines(again) == [
        "step 1: 10% on v2, passed (candidate 30 calls, 5XX rate 0.000, latency 1.5 ms)"
    ]
    assert again.summary()["steps"] == ["10%: passed"]
