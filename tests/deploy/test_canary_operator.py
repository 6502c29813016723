"""CanaryReleaseOperator alone in dag.test() against local_aws: real endpoints, real
CloudWatch metrics, local_aws's variant faults."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from typing import Any

import pytest

from tests.conftest import admin, serialize_dag, unique
from tests.deploy.kit import DAY, environment, new_registry

pytestmark = pytest.mark.slow


def run_release(package: str, endpoint: str, dag_id: str | None = None) -> Any:
    from airflow.sdk import DAG

    from mlops_pipeline.deploy.operators import CanaryReleaseOperator

    with DAG(
        dag_id or unique("t_canary"), schedule=None, start_date=dt.datetime(2026, 1, 1)
    ) as dag:
        CanaryReleaseOperator(task_id="canary_release", package_arn=package, retries=0)
    serialize_dag(dag)
    return dag.test(logical_date=DAY)


def read_record(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_first_deployment_then_a_healthy_canary_is_promoted(aws_conn, local_aws, sm, s3):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    first = registry.register(sm, s3, [1, 2, 3])
    second = registry.register(sm, s3, [1, 2, 4])
    scaling = local_aws.client("application-autoscaling")

    def scaled() -> list[tuple[str, int, int]]:
        targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")
        return [
            (t["ResourceId"], t["MinCapacity"], t["MaxCapacity"])
            for t in targets["ScalableTargets"]
            if t["ResourceId"].startswith(f"endpoint/{endpoint}/")
        ]

    with environment(registry, endpoint, MLOPS_DEPLOY_AUTOSCALING_MAX_INSTANCES="3"):
        run = run_release(first, endpoint)
        assert run.state == "success"
        described = sm.describe_endpoint(EndpointName=endpoint)
        assert [v["VariantName"] for v in described["ProductionVariants"]] == ["v1"]
        assert scaled() == [(f"endpoint/{endpoint}/variant/v1", 1, 3)]

        run = run_release(second, endpoint)
        assert run.state == "success"
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["v2"]
    # kept across the promotion: the new variant scales as the old one did
    assert scaled() == [(f"endpoint/{endpoint}/variant/v2", 1, 3)]
    policies = scaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=f"endpoint/{endpoint}/variant/v2"
    )["ScalingPolicies"]
    [policy] = policies
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    ti = run.get_task_instance("canary_release")
    summary = ti.xcom_pull(task_ids="canary_release")
    assert summary["status"] == "promoted"
    assert summary["previous_package"] == first
    # the task's link: local_aws's description of the endpoint (the AWS console on AWS)
    from mlops_pipeline.links import SageMakerResourceLink

    stored = ti.xcom_pull(task_ids="canary_release", key=SageMakerResourceLink.key)
    assert stored, "no link persisted"
    link = SageMakerResourceLink().format_link(**stored)
    assert link == f"{local_aws.url}/_local_aws/describe/endpoints/{endpoint}"
    assert summary["steps"] == ["10%: passed", "50%: passed", "100%: not judged"]


# -- rollbacks on one endpoint whose baseline (v1) is shared by the tests below -------------
@pytest.fixture(scope="module")
def production(aws_conn, local_aws, sm, s3):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    baseline = registry.register(sm, s3, [1, 2, 3])
    with environment(registry, endpoint):
        assert run_release(baseline, endpoint).state == "success"
    return registry, endpoint, baseline


def only_baseline_serves(sm, runtime, endpoint: str) -> None:
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["v1"]
    for _ in range(5):
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=b"1,2,3"
        )
        assert answer["InvokedProductionVariant"] == "v1"


def release_fails(
    production, sm, s3, capfd, fault: dict | None, local_aws, **env: str
) -> tuple[str, dict]:
    registry, endpoint, _ = production
    candidate = registry.register(sm, s3, [1, 2, 4])
    variant = "v" + candidate.rsplit("/", 1)[1]
    if fault:
        admin(local_aws, f"/_local_aws/faults/endpoints/{endpoint}/variants/{variant}", fault)
    capfd.readouterr()
    with environment(registry, endpoint, **env):
        run = run_release(candidate, endpoint)
    out = capfd.readouterr()
    assert run.state == "failed"
    records = s3.list_objects_v2(
        Bucket=registry.bucket, Prefix=f"model-deploy/releases/{endpoint}/"
    )
    latest = max(records["Contents"], key=lambda o: o["LastModified"])
    return out.out + out.err, read_record(s3, registry.bucket, latest["Key"])


def test_a_5xx_candidate_is_rolled_back_in_the_first_step(
    production, sm, s3, runtime, capfd, local_aws
):
    output, record = release_fails(production, sm, s3, capfd, {"error_rate": 0.5}, local_aws)
    assert record["status"] == "rolled_back"
    [step] = record["steps"]
    assert step["weight"] == 10 and step["verdict"]["passed"] is False
    failed = [c for c in step["verdict"]["checks"] if not c["passed"]]
    assert [c["metric"] for c in failed] == ["Invocation5XXErrors rate"]
    # half the calls fail by the fault's coin: a wide margin either side of 0.5
    assert 0.15 <= failed[0]["value"] <= 0.85 and failed[0]["bound"] == pytest.approx(
        0.01, abs=1e-9
    )
    assert "ROLLED BACK: step 1 (10%): Invocation5XXErrors rate = " in output
    assert ", bound 0.01 (at most the baseline's 0 + 0.01)" in output
    # one alert, the rollback's own: its step and both variants' figures, not a generic one
    assert "canary on " in output and "rolled back" in output
    assert "Step: 1 (10%)" in output and "candidate error_rate: " in output
    assert output.count("ALERT ") == 1, output[-3000:]
    only_baseline_serves(sm, runtime, production[1])


def test_a_slow_candidate_is_rolled_back_on_latency(production, sm, s3, runtime, capfd, local_aws):
    # each call takes the fault's 150 ms, so a 3-s bake holds at most 20 of them, fewer on a
    # busy machine: the minimum is set low, as this test is about latency
    output, record = release_fails(
        production,
        sm,
        s3,
        capfd,
        {"latency_ms": 150},
        local_aws,
        MLOPS_DEPLOY_CANARY_PLAN="10%:3s,50%:3s,100%",
        MLOPS_DEPLOY_MIN_INVOCATIONS="3",
    )
    step = record["steps"][0]
    failed = [c for c in step["verdict"]["checks"] if not c["passed"]]
    assert [c["metric"] for c in failed] == ["ModelLatency ms (relative)"]
    assert failed[0]["value"] >= 150  # the fault's delay is inside ModelLatency
    assert "ModelLatency ms (relative) = " in output
    only_baseline_serves(sm, runtime, production[1])


def test_no_traffic_fails_the_analysis(production, sm, s3, runtime, capfd, local_aws):
    output, record = release_fails(
        production, sm, s3, capfd, None, local_aws, MLOPS_DEPLOY_REPLAY_RATE="0"
    )
    check = record["steps"][0]["verdict"]["checks"][0]
    assert (check["metric"], check["value"], check["passed"]) == ("Invocations", 0.0, False)
    assert "step 1 (10%): Invocations = 0, bound 5" in output
    only_baseline_serves(sm, runtime, production[1])


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("10%:2s,50%:2s", "the weights end at 50%, not 100%"),
        ("10%:0.5s,100%", "bake 0.5 s is shorter than the metric period (1 s"),
    ],
)
def test_a_bad_plan_is_refused_before_any_traffic_moves(production, sm, s3, capfd, plan, message):
    registry, endpoint, _ = production
    candidate = registry.register(sm, s3, [1, 2, 5])
    before = sm.describe_endpoint(EndpointName=endpoint)
    capfd.readouterr()
    with environment(registry, endpoint, MLOPS_DEPLOY_CANARY_PLAN=plan):
        run = run_release(candidate, endpoint)
    out = capfd.readouterr()
    assert run.state == "failed"
    assert message in out.out + out.err
    after = sm.describe_endpoint(EndpointName=endpoint)
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert after["LastModifiedTime"] == before["LastModifiedTime"]
    version = candidate.rsplit("/", 1)[1]
    assert not sm.list_models(NameContains=f"-v{version}-")["Models"]


def test_a_package_not_approved_or_from_another_group_is_refused(production, sm, s3, capfd):
    registry, endpoint, _ = production
    pending = registry.register(sm, s3, [1, 2, 6], status="PendingManualApproval")
    other = new_registry(sm, s3).register(sm, s3, [1, 2, 6])
    for package, message in (
        (pending, "is PendingManualApproval, not Approved: approve it"),
        (other, "not '" + registry.group + "' (MLOPS_MODEL_PACKAGE_GROUP)"),
    ):
        capfd.readouterr()
        with environment(registry, endpoint):
            run = run_release(package, endpoint)
        out = capfd.readouterr()
        assert run.state == "failed" and message in out.out + out.err
    assert [
        v["VariantName"] for v in sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    ] == ["v1"]


def test_an_interrupted_release_resumes_the_same_step_from_its_record(aws_conn, sm, s3, capfd):
    """The task dies mid-bake of step 2 (as with a lost worker or triggerer); its retry
    reads the audit record and finishes step 2's bake, never starting again at step 1."""
    from airflow.sdk import DAG

    from mlops_pipeline.deploy.operators import CanaryReleaseOperator

    class LosesItsWorkerOnce(CanaryReleaseOperator):
        lost = False

        def _defer_bake(self, release, until):
            if release.current.step == 2 and not type(self).lost:
                type(self).lost = True
                # lost for longer than the bake: nobody replays traffic in its window, so
                # the retry must bake again rather than judge an empty window
                while time.time() <= release.current.bake_until:
                    time.sleep(0.05)
                raise RuntimeError("worker lost mid-bake (injected)")
            super()._defer_bake(release, until)

    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    baseline = registry.register(sm, s3, [1, 2, 3])
    candidate = registry.register(sm, s3, [1, 2, 7])
    with environment(registry, endpoint):
        assert run_release(baseline, endpoint).state == "success"
        with DAG(unique("t_canary"), schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
            LosesItsWorkerOnce(
                task_id="canary_release",
                package_arn=candidate,
                retries=1,
                retry_delay=dt.timedelta(0),
            )
        serialize_dag(dag)
        capfd.readouterr()
        run = dag.test(logical_date=DAY)
        out = capfd.readouterr()
    assert LosesItsWorkerOnce.lost
    assert "worker lost mid-bake (injected)" in out.out + out.err
    assert re.search(r"resuming release \S+ from its record \(baking, step 2\)", out.out + out.err)
    assert run.state == "success", (out.out + out.err)[-6000:]
    ti = run.get_task_instance("canary_release")
    assert ti.try_number == 2
    summary = ti.xcom_pull(task_ids="canary_release")
    assert summary["status"] == "promoted" and summary["previous_package"] == baseline
    record = read_record(s3, registry.bucket, summary["audit_uri"].split("/", 3)[3])
    assert [s["step"] for s in record["steps"]] == [1, 2, 3]
    step2 = record["steps"][1]
    # judged on its one bake: the retry kept the start the first try recorded
    assert step2["verdict"]["passed"] and step2["judged_at"] >= step2["bake_until"]
    version = candidate.rsplit("/", 1)[1]
    assert [
        v["VariantName"] for v in sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    ] == [f"v{version}"]


# -- native mode: SageMaker's BlueGreenUpdatePolicy with rollback alarms ------------------------
def test_native_mode_hands_the_plan_to_sagemaker_and_fails_on_its_rollback(
    production, sm, s3, runtime, local_aws, capfd
):
    registry, endpoint, _ = production
    cloudwatch = local_aws.client("cloudwatch")
    native = {"MLOPS_DEPLOY_CANARY_MODE": "native", "MLOPS_DEPLOY_CANARY_PLAN": "10%:3s,100%"}
    candidate = registry.register(sm, s3, [1, 2, 8])

    def fire_the_alarm() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{endpoint}-canary")
            names = [
                a["AlarmName"] for a in alarms["MetricAlarms"] if a["AlarmName"].endswith("-5xx")
            ]
            if names:
                cloudwatch.set_alarm_state(
                    AlarmName=names[0], StateValue="ALARM", StateReason="test"
                )
                return
            time.sleep(0.1)

    firing = threading.Thread(target=fire_the_alarm, daemon=True)
    firing.start()
    capfd.readouterr()
    with environment(registry, endpoint, **native):
        run = run_release(candidate, endpoint)
    out = capfd.readouterr()
    firing.join(timeout=5)
    assert run.state == "failed"
    text = out.out + out.err
    assert "ROLLED BACK: SageMaker rolled back: Rolled back to endpoint configuration" in text
    assert "-5xx was in ALARM state" in text
    only_baseline_serves(sm, runtime, endpoint)


def test_native_mode_promotes_when_no_alarm_fires(aws_conn, sm, s3, local_aws):
    registry = new_registry(sm, s3)
    endpoint = unique("prod")
    first = registry.register(sm, s3, [1, 2, 3])
    second = registry.register(sm, s3, [1, 2, 4])
    native = {"MLOPS_DEPLOY_CANARY_MODE": "native", "MLOPS_DEPLOY_CANARY_PLAN": "10%:2s,100%"}
    with environment(registry, endpoint, **native):
        assert run_release(first, endpoint).state == "success"
        run = run_release(second, endpoint)
    assert run.state == "success"
    summary = run.get_task_instance("canary_release").xcom_pull(task_ids="canary_release")
    assert summary["status"] == "promoted" and summary["previous_package"] == first
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["v2"]
    policy = described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["CanarySize"]["Value"] == 10
    alarms = local_aws.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{endpoint}-canary")
    assert sorted(a["AlarmName"].rsplit("-", 1)[1] for a in alarms["MetricAlarms"]) == [
        "5xx",
        "latency",
    ]
