"""Endpoints in a run's cost record: instance-hours of every variant within the run's span
(a canary beside its baseline counts both), found by the endpoint's tags."""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_pipeline import naming
from mlops_pipeline.config import load_settings
from mlops_pipeline.cost import prices, record
from tests.conftest import unique, wait_for
from tests.jobkit import endpoint_config_request, model_request, upload_artifacts

pytestmark = pytest.mark.slow


def test_a_runs_endpoint_costs_each_variants_instance_hours(sm, s3, bucket, monkeypatch):
    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    art = upload_artifacts(s3, prefix="cost-endpoints")
    run_id = unique("manual__deploy")
    models = {}
    for which in ("a", "b"):
        models[which] = unique(f"cost-model-{which}")
        sm.create_model(**model_request(models[which], art.data[which], art.code))
    config = unique("cost-config")
    request = endpoint_config_request(
        config, {"baseline": (models["a"], 9.0), "canary": (models["b"], 1.0)}
    )
    request["ProductionVariants"][1]["InstanceType"] = "ml.c5.large"
    sm.create_endpoint_config(**request)
    other_config = unique("cost-config")
    sm.create_endpoint_config(**endpoint_config_request(other_config, {"all": (models["a"], 1)}))

    start = dt.datetime.now(dt.UTC)
    ours, theirs = unique("cost-endpoint"), unique("cost-endpoint")
    sm.create_endpoint(
        EndpointName=ours,
        EndpointConfigName=config,
        Tags=naming.airflow_tags("model_deploy", run_id, "canary_release"),
    )
    sm.create_endpoint(
        EndpointName=theirs,
        EndpointConfigName=other_config,
        Tags=naming.airflow_tags("model_deploy", unique("manual__other"), "deploy_staging"),
    )
    try:
        for name in (ours, theirs):
            done = wait_for(lambda n=name: sm.describe_endpoint(EndpointName=n), "EndpointStatus")
            assert done["EndpointStatus"] == "InService", done.get("FailureReason")
        end = dt.datetime.now(dt.UTC)
        created = sm.describe_endpoint(EndpointName=ours)["CreationTime"]
        rec = record.collect(
            sm, s3, load_settings(), record.RunInfo("model_deploy", run_id, "success", start, end)
        )
    finally:
        for name in (ours, theirs):
            sm.delete_endpoint(EndpointName=name)

    seconds = (end - max(created, start)).total_seconds()
    table = prices.load()
    jobs = {j["name"]: j for j in rec["jobs"]}
    assert set(jobs) == {f"{ours}/baseline", f"{ours}/canary"}
    for variant, instance_type in (("baseline", "ml.m5.large"), ("canary", "ml.c5.large")):
        job = jobs[f"{ours}/{variant}"]
        assert job["kind"] == "hosting" and job["task_id"] == "canary_release"
        assert job["instance_type"] == instance_type and job["instance_count"] == 1
        assert job["seconds"] == pytest.approx(seconds, abs=1e-6)
        assert job["total_usd"] == pytest.approx(
            seconds / 3600 * table.rate("us-east-1", "hosting", instance_type), rel=1e-9
        )
