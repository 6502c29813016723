"""Endpoints in a run's cost record: instance-hours of every variant within the run's span
(a canary beside its baseline counts both), found by the endpoint's tags."""

from __future__ import annotations

import datetime as dt
import json

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


def test_a_canary_release_on_an_earlier_runs_endpoint_costs_the_overlap(
    sm, s3, bucket, monkeypatch
):
    """A release run changes an endpoint that another run created: its cost comes from the
    release's audit record — the baseline alone, both variants while the canary ran, then
    the candidate alone after promotion — each priced by its own instance type."""
    from mlops_pipeline.deploy.plan import parse_plan
    from mlops_pipeline.deploy.release import Variant, new_release

    monkeypatch.setenv("MLOPS_BUCKET", bucket)
    settings = load_settings()
    art = upload_artifacts(s3, prefix="cost-release")
    run_id = unique("manual__release")
    tags = naming.airflow_tags("model_deploy", run_id, "canary_release")
    names = {k: unique(f"cost-{k}") for k in ("m1", "m2", "alone1", "canary", "alone2")}
    for model, which in (("m1", "a"), ("m2", "b")):
        sm.create_model(**model_request(names[model], art.data[which], art.code))

    def config(name: str, variants: dict[str, tuple[str, float]], candidate_type: str) -> None:
        request = endpoint_config_request(name, variants)
        for v in request["ProductionVariants"]:
            if v["VariantName"] == "v2":
                v["InstanceType"] = candidate_type
        sm.create_endpoint_config(**request, Tags=tags)

    config(names["alone1"], {"v1": (names["m1"], 1.0)}, "ml.c5.large")
    config(names["canary"], {"v1": (names["m1"], 9.0), "v2": (names["m2"], 1.0)}, "ml.c5.large")
    config(names["alone2"], {"v2": (names["m2"], 1.0)}, "ml.c5.large")

    # the run: 0 → 1000 s; the release starts at 100, asks for the canary at 160,
    # promotes at 760; the window ends at 1000
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1000)
    epoch = t0.timestamp()
    release = new_release(
        release_id="20260307-abc123",
        endpoint="card-fraud-prod",
        candidate=Variant(
            "v2", names["m2"], "arn:aws:sagemaker:us-east-1:1:model-package/g/2", names["alone2"]
        ),
        baseline=Variant(
            "v1", names["m1"], "arn:aws:sagemaker:us-east-1:1:model-package/g/1", names["alone1"]
        ),
        plan=parse_plan("10%:5m,100%", metric_period_seconds=60),
        bounds={},
        canary_config=names["canary"],
        failure_budget=0,
        now=epoch + 100,
        dag_id="model_deploy",
        run_id=run_id,
    )
    release.begin_step(1, epoch + 160)
    release.serving(epoch + 170)
    release.finish("promoted", epoch + 760)
    key = f"{settings.deploy_prefix}/releases/card-fraud-prod/{unique('r')}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(release.to_json()))

    run = record.RunInfo("model_deploy", run_id, "success", t0, t0 + dt.timedelta(seconds=1000))
    rec = record.collect(sm, s3, settings, run)

    table = prices.load()
    m5, c5 = (table.rate("us-east-1", "hosting", t) / 3600 for t in ("ml.m5.large", "ml.c5.large"))
    seconds: dict[str, float] = {}
    usd: dict[str, float] = {}
    for job in rec["jobs"]:
        assert job["kind"] == "hosting" and job["task_id"] == "canary_release", job
        seconds[job["name"]] = seconds.get(job["name"], 0) + job["seconds"]
        usd[job["name"]] = usd.get(job["name"], 0) + job["total_usd"]
    # v1 serves from the release's start to the promotion; v2 from the canary to the end
    assert seconds == pytest.approx(
        {"card-fraud-prod/v1": 660, "card-fraud-prod/v2": 840}, abs=1e-6
    )
    assert usd["card-fraud-prod/v1"] == pytest.approx(660 * m5, rel=1e-9)
    assert usd["card-fraud-prod/v2"] == pytest.approx(840 * c5, rel=1e-9)
    assert rec["total_usd"] == pytest.approx(660 * m5 + 840 * c5, rel=1e-6)
    # a config deleted since: that part of the bill is unknown, never zero
    sm.delete_endpoint_config(EndpointConfigName=names["canary"])
    rec = record.collect(sm, s3, settings, run)
    assert rec["total_usd"] is None
    assert f"card-fraud-prod/{names['canary']}" in rec["unknown_cost_jobs"]
