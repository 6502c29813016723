"""The cost model against a hand computation: no Airflow, no AWS."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlops_pipeline.cost import model, prices

UNTIL = dt.datetime(2026, 3, 7, 12, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 3, 7, 10, tzinfo=dt.UTC)
REL = 1e-9  # relative tolerance: the model and the hand computation round differently

TABLE = prices.parse(
    {
        "as_of": "2026-01-01",
        "source": "test",
        "hourly": {
            "us-east-1": {
                "training": {"ml.m5.large": 0.115, "ml.m5.xlarge": 0.23},
                "processing": {"ml.c5.xlarge": 0.204},
                "transform": {"ml.m5.xlarge": 0.23},
                "hosting": {"ml.m5.large": 0.115, "ml.c5.large": 0.102},
            }
        },
        "storage_gb_month": {"us-east-1": 0.14},
    }
)
GB_HOUR = 0.14 / 730

SPOT_TRAINING = {
    "TrainingJobName": "tune-child-1",
    "TrainingJobStatus": "Completed",
    "TuningJobArn": "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/tune-x",
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "EnableManagedSpotTraining": True,
    "TrainingTimeInSeconds": 1000,
    "BillableTimeInSeconds": 400,
}
ON_DEMAND_TRAINING = {
    "TrainingJobName": "train-big",
    "TrainingJobStatus": "Completed",
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 0},
    "EnableManagedSpotTraining": False,
    "TrainingStartTime": T0,
    "TrainingEndTime": T0 + dt.timedelta(hours=1),
    "BillableTimeInSeconds": 3600,
}
PROCESSING = {
    "ProcessingJobName": "preprocess",
    "ProcessingJobStatus": "Completed",
    "ProcessingResources": {
        "ClusterConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30}
    },
    "CreationTime": T0 - dt.timedelta(minutes=1),
    "ProcessingStartTime": T0,
    "ProcessingEndTime": T0 + dt.timedelta(minutes=10),
}
TRANSFORM = {
    "TransformJobName": "score",
    "TransformJobStatus": "Completed",
    "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    "TransformStartTime": T0.timestamp(),  # epoch seconds, as a JSON dump would have them
    "TransformEndTime": (T0 + dt.timedelta(minutes=30)).timestamp(),
}
UNKNOWN = {
    "ProcessingJobName": "exotic",
    "ProcessingJobStatus": "Completed",
    "ProcessingResources": {
        "ClusterConfig": {"InstanceType": "ml.x99.huge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    },
    "ProcessingStartTime": T0,
    "ProcessingEndTime": T0 + dt.timedelta(minutes=5),
}


def costs() -> dict[str, model.Cost]:
    jobs = [
        ("training", SPOT_TRAINING, "tune"),
        ("training", ON_DEMAND_TRAINING, "train"),
        ("processing", PROCESSING, "preprocess"),
        ("transform", TRANSFORM, "transform"),
        ("processing", UNKNOWN, "preprocess"),
    ]
    return {
        d.get("TrainingJobName") or d.get("ProcessingJobName") or d["TransformJobName"]: model.cost(
            model.usage_of(kind, d, task, UNTIL), TABLE, "us-east-1"
        )
        for kind, d, task in jobs
    }


def test_each_job_costs_what_the_hand_computation_says():
    c = costs()
    # spot: 400 billed s of 1000 trained, at the on-demand rate; 30 GB for the 1000 s
    spot = c["tune-child-1"]
    assert spot.compute == pytest.approx(400 / 3600 * 0.115, rel=REL)
    assert spot.on_demand == pytest.approx(1000 / 3600 * 0.115, rel=REL)
    assert spot.spot_savings == pytest.approx(600 / 3600 * 0.115, rel=REL)
    assert spot.storage == pytest.approx(30 * 1000 / 3600 * GB_HOUR, rel=REL)
    assert spot.usage.parent == "tune-x"
    # on demand, 2 instances for an hour, no volume
    assert c["train-big"].total == pytest.approx(2 * 0.23, rel=REL)
    assert c["train-big"].spot_savings == 0
    # processing: the job's own span (10 min, not from CreationTime), 2 instances, 30 GB each
    pre = c["preprocess"]
    assert pre.usage.seconds == 600
    assert pre.total == pytest.approx(
        600 / 3600 * 2 * 0.204 + 30 * 2 * 600 / 3600 * GB_HOUR, rel=REL
    )
    assert c["score"].total == pytest.approx(0.5 * 0.23, rel=REL)
    # an instance type the table lacks: unknown, never zero
    exotic = c["exotic"]
    assert exotic.rate is None and exotic.compute is None and exotic.total is None


def test_the_run_total_says_which_jobs_are_unknown():
    t = model.totals(costs().values())
    known = (
        400 / 3600 * 0.115
        + 30 * 1000 / 3600 * GB_HOUR
        + 2 * 0.23
        + 600 / 3600 * 2 * 0.204
        + 30 * 2 * 600 / 3600 * GB_HOUR
        + 0.5 * 0.23
    )
    assert t.known_usd == pytest.approx(known, rel=REL)
    assert t.total_usd is None and t.unknown == ("exotic",)
    assert t.spot_savings_usd == pytest.approx(600 / 3600 * 0.115, rel=REL)
    assert t.by_task["preprocess"] is None  # one of its jobs is unknown
    assert t.by_task["train"] == pytest.approx(0.46, rel=REL)
    assert t.by_instance_type["ml.m5.xlarge"] == pytest.approx(0.46 + 0.115, rel=REL)
    assert t.by_instance_type["ml.x99.huge"] is None
    json.dumps(t.to_json())  # the record is plain JSON


def test_a_running_job_is_counted_up_to_the_record_time():
    running = {**PROCESSING, "ProcessingJobStatus": "InProgress", "ProcessingEndTime": None}
    usage = model.usage_of("processing", running, "preprocess", UNTIL)
    assert usage.seconds == (UNTIL - T0).total_seconds()


def test_endpoint_variants_cost_their_instance_hours_in_the_window_canary_included():
    created = T0
    canary_at = T0 + dt.timedelta(hours=1)
    promoted_at = T0 + dt.timedelta(hours=2)
    baseline = {"VariantName": "blue", "InstanceType": "ml.m5.large", "InitialInstanceCount": 2}
    canary = {"VariantName": "green", "InstanceType": "ml.c5.large", "InitialInstanceCount": 1}
    spans = model.config_spans(
        "prod",
        [
            (created, "deploy", [baseline]),
            (canary_at, "canary_release", [baseline, canary]),
            (promoted_at, "promote", [{**canary, "InitialInstanceCount": 2}]),
        ],
    )
    # the run's window starts half an hour after the endpoint came up, ends 3 h after
    usage = model.variant_usage(spans, T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=3))
    hours = {
        (u.name, u.task_id): (u.seconds / 3600, u.instance_count, u.instance_type) for u in usage
    }
    assert hours == {
        ("prod/blue", "deploy"): (0.5, 2, "ml.m5.large"),
        ("prod/blue", "canary_release"): (1.0, 2, "ml.m5.large"),
        ("prod/green", "canary_release"): (1.0, 1, "ml.c5.large"),
        ("prod/green", "promote"): (1.0, 2, "ml.c5.large"),
    }
    total = model.totals(model.cost(u, TABLE, "us-east-1") for u in usage).total_usd
    assert total == pytest.approx(
        0.5 * 2 * 0.115 + 1 * 2 * 0.115 + 1 * 1 * 0.102 + 1 * 2 * 0.102, rel=REL
    )


def test_the_bundled_table_is_dated_and_knows_the_project_instance_types():
    from mlops_pipeline.config import Settings

    table = prices.load()
    assert table.as_of and "aws.amazon.com" in table.source
    s = Settings()
    for kind, instance_type in (
        ("processing", s.processing_instance_type),
        ("training", s.training_instance_type),
        ("transform", s.transform_instance_type),
        ("hosting", s.endpoint_instance_type),
    ):
        assert table.rate(s.region, kind, instance_type), (kind, instance_type)
    assert table.storage_rate(s.region)


def test_a_malformed_table_names_the_field():
    with pytest.raises(prices.PriceTableError, match=r"hourly\.us-east-1\.training\.ml\.m5\.large"):
        prices.parse(
            {
                "as_of": "x",
                "source": "y",
                "hourly": {"us-east-1": {"training": {"ml.m5.large": -1}}},
            }
        )
    with pytest.raises(prices.PriceTableError, match="not a job kind"):
        prices.parse({"as_of": "x", "source": "y", "hourly": {"us-east-1": {"spot": {}}}})
    with pytest.raises(prices.PriceTableError, match="MLOPS_PRICE_TABLE"):
        prices.load("/nonexistent/prices.json")


def _release(**overrides):
    release = {
        "endpoint": "prod",
        "candidate": {"variant": "v2", "config": "alone2"},
        "baseline": {"variant": "v1", "config": "alone1"},
        "canary_config": "canary",
        "status": "rolled_back",
        "mode": "stepped",
        "started_at": 100.0,
        "ended_at": 400.0,
        "steps": [{"requested_at": 160.0}],
    }
    return {**release, **overrides}


CONFIGS = {
    "alone1": [{"VariantName": "v1", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    "alone2": [{"VariantName": "v2", "InstanceType": "ml.c5.large", "InitialInstanceCount": 2}],
    "canary": [
        {"VariantName": "v1", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
        {"VariantName": "v2", "InstanceType": "ml.c5.large", "InitialInstanceCount": 2},
    ],
}


def _live(release, until=1000.0):
    from mlops_pipeline.cost import model, releases

    at = dt.datetime.fromtimestamp
    history = releases.phases(release, CONFIGS, "canary_release")
    spans = model.config_spans("prod", history)
    usage = model.variant_usage(spans, at(0, dt.UTC), at(until, dt.UTC))
    totals: dict[str, float] = {}
    for u in usage:
        totals[u.name] = totals.get(u.name, 0) + u.seconds * u.instance_count
    return totals


def test_a_rolled_back_release_costs_the_candidate_until_the_rollback_only():
    assert _live(_release()) == {"prod/v1": 900.0, "prod/v2": 2 * 240.0}


def test_a_native_blue_green_release_costs_both_fleets_from_its_start():
    native = _release(mode="native", canary_config=None, status="promoted", steps=[])
    assert _live(native) == {"prod/v1": 300.0, "prod/v2": 2 * 900.0}


def test_a_release_that_moved_nothing_costs_the_baseline_alone_and_unchanged_nothing():
    assert _live(_release(steps=[], ended_at=None, status="shifting")) == {"prod/v1": 900.0}
    assert _live(_release(status="unchanged")) == {}
